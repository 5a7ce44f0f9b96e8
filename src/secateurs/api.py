"""The Python front door: ``import secateurs`` and prune, fine-tune, measure, save and load any
``nn.Module`` with keyword arguments, without a saved model directory in between.

Every function here is a thin layer over the modules the command line uses (the pruning engine,
:mod:`secateurs.runs`, :mod:`secateurs.store`), so a script and ``secateurs prune`` get the same
results.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.data import LabelledData, load_split
from secateurs.device import model_device, resolve_device
from secateurs.errors import SecateursError
from secateurs.measurement import LatencySettings
from secateurs.models.registry import FACTORY_PREFIX
from secateurs.models.user_factory import allow_factory as allow_factory_spec
from secateurs.pruning.record import ManifestPruning
from secateurs.report import Cost, Latency
from secateurs.runs import measuring
from secateurs.runs.torch_state import preserved_torch_state
from secateurs.runs.training import Training
from secateurs.store import CUSTOM_PREFIX, Manifest, load_model, read_manifest, save_model


@dataclass
class Pruned:
    """A pruned copy of a model: ``model``, the cost ratio it ``achieved`` (after / before, of
    the target's kind), and the ``record`` that :func:`save` stores to rebuild it from JSON."""

    model: nn.Module
    achieved: float
    record: ManifestPruning
    input_size: tuple[int, ...]


@dataclass
class Measurement:
    """A model's cost, its latency (median ms per backend and batch size), and, when measured
    against a baseline, the baseline's cost and the speed-ups (:class:`Latency` rows)."""

    cost: Cost
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    baseline_cost: Cost | None = None
    speedup: dict[str, dict[str, Latency]] = field(default_factory=dict)


def list_methods() -> list[dict[str, Any]]:
    """Every pruning method: name, kind (one-shot or training-time), summary, the command that
    runs it, and whether it needs data."""
    from secateurs.pruning.methods import list_methods as one_shot_names
    from secateurs.pruning.methods import method_class
    from secateurs.pruning.training_time import training_time_method, training_time_methods

    found = [
        {
            "name": name,
            "kind": "one-shot",
            "summary": method_class(name).summary,
            "command": f"secateurs prune MODEL --method {name} --target-macs R"
            + (" --data PATH" if method_class(name).needs_data else ""),
            "needs_data": method_class(name).needs_data,
        }
        for name in one_shot_names()
    ]
    for name in training_time_methods():
        method = training_time_method(name)
        found.append(
            {
                "name": name,
                "kind": "training-time",
                "summary": method.summary,
                "command": method.usage or f"secateurs {name} MODEL --data PATH",
                "needs_data": True,
            }
        )
    return found


def list_models() -> list[str]:
    """The registered architectures (``secateurs models``); any torchvision classifier is also
    available as ``torchvision:NAME``."""
    from secateurs.models import list_models as registered

    return registered()


def load_data(
    path: str | Path,
    *,
    manifest: Manifest | None = None,
    image_size: int | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
) -> LabelledData:
    """The train and test splits at ``path``, normalised as ``manifest``'s model expects (else
    with the training split's own channel statistics)."""
    size = image_size or (manifest.image_size if manifest else None)
    train, test = load_split(str(path), "train", size), load_split(str(path), "test", size)
    if train_subset:
        train = train.subset(train_subset, seed)
    if test_subset:
        test = test.subset(test_subset, seed)
    mean, std = (manifest.mean, manifest.std) if manifest else train.channel_stats()
    return LabelledData(train, test, mean, std)


IN_MEMORY = Path("(in memory)")  # the model and output "paths" of a job run on objects


def prune(
    model: nn.Module,
    *,
    method: str,
    example_input: torch.Tensor,
    target_macs: float | None = None,
    target_params: float | None = None,
    target_latency: float | None = None,
    data: LabelledData | None = None,
    seed: int = 0,
    **options: Any,
) -> Pruned:
    """A copy of ``model`` pruned physically with ``method`` to keep ``target_macs`` of its MACs
    (default 0.5) or ``target_params`` of its parameters; ``model`` is left as it was. ``data``
    feeds the methods that score on data. This is ``secateurs prune``'s pruning step: the same
    job (:class:`~secateurs.runs.prune_job.PruneJob`), checks and defaults.

    ``options``: any of ``secateurs prune``'s options by their Python names (``layer_ratios``,
    ``steps``, ``fold_bias``, ``strategy``, ``normalize``, ``round_to``, ``min_channels``,
    ``min_fraction`` and ``ends_min_fraction`` (the channel floor), ``recalibrate_bn``,
    ``scoring_batches``, ``batch_size``, ``threads``, ...); anything else is the method's own
    hyperparameter (e.g. PFP's ``selection="randomized"``), as
    ``--method-param`` on the command line.

    ``target_latency``: keep that fraction of the model's latency measured in ``backend``
    (``"onnxruntime"`` or ``"eager"``) at ``latency_batch`` images on ``threads`` threads
    (tables cached in ``latency_cache``); ``round_to="auto"`` rounds widths to those the
    backend runs efficiently (docs/latency.md)."""
    from secateurs.runs.prune_job import PruneJob
    from secateurs.runs.prune_run import prune_copy

    given = [t for t in (target_macs, target_params, target_latency) if t is not None]
    if len(given) > 1:
        raise SecateursError("give one of target_macs, target_params, target_latency")
    job_options, params = _split(PruneJob, options)
    if "latency_threads" in params:  # the name this function took before the job's
        job_options.setdefault("threads", params.pop("latency_threads"))
    job = _job(
        PruneJob,
        method=method,
        method_params=params,
        target_macs=target_macs,
        target_params=target_params,
        target_latency=target_latency,
        data=None if data is None else str(IN_MEMORY),
        seed=seed,
        **job_options,
    )
    input_size = tuple(example_input.shape[1:])
    with preserved_torch_state():
        torch.manual_seed(job.seed)
        manifest = _custom_manifest(model, None, example_input)
        done = prune_copy(job, model, manifest, data, model_device(model))
    record = done.manifest.pruning
    assert record is not None and record.oneshot is not None  # prune_copy always records
    return Pruned(done.model, float(record.oneshot.achieved), record, input_size)


def fine_tune(
    model: nn.Module,
    data: LabelledData,
    *,
    epochs: int,
    manifest: Manifest | None = None,
    run_dir: str | Path | None = None,
    teacher: nn.Module | None = None,
    **options: Any,
) -> Training:
    """Train ``model`` in place for ``epochs`` as ``secateurs prune --finetune-epochs`` does:
    the training recipe of ``manifest``'s model (its augmentation and regularisation; the
    defaults without one), no warm-up, cosine from ``lr``, checkpointed every epoch into
    ``run_dir`` (a temporary directory if None; a checkpoint already there is resumed). Under
    ``torchrun`` it runs with DDP. ``options``: ``lr``, ``batch_size``, ``seed``, ``threads``,
    ``distill`` (with ``teacher``: the model to distil from), as the command's flags.
    Torch's global seed, thread count and determinism are put back afterwards."""
    from secateurs.runs.fine_tuning import FineTuneJob
    from secateurs.runs.fine_tuning import fine_tune as run_fine_tune

    renamed = {"lr": "finetune_lr"}
    options = {renamed.get(key, key): value for key, value in options.items()}
    job_options, unknown = _split(FineTuneJob, options)
    if unknown:
        raise SecateursError(f"fine_tune has no option {', '.join(sorted(unknown))}")
    job = _job(FineTuneJob, data=str(IN_MEMORY), finetune_epochs=epochs, **job_options)
    if job.distill and teacher is None:
        raise SecateursError("distill needs the teacher model: pass teacher=")
    manifest = manifest or Manifest("custom", {}, [], [], [], [])
    with preserved_torch_state(), _directory(run_dir, "secateurs-finetune-") as directory:
        return run_fine_tune(job, model, manifest, data, directory, epochs=epochs, teacher=teacher)


def _split(job_type: type, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` split into ``job_type``'s declared fields and the rest."""
    from secateurs.options import declared

    names = {f.name for f, _ in declared(job_type)}
    return (
        {k: v for k, v in options.items() if k in names},
        {k: v for k, v in options.items() if k not in names},
    )


def _job(job_type: type, **values: Any) -> Any:
    """A job of ``job_type`` on objects in memory, checked as the command checks it: every
    refusal is a :class:`SecateursError`."""
    values.setdefault("model", IN_MEMORY)
    values.setdefault("out", IN_MEMORY)
    try:
        job = job_type(**values)
    except TypeError as error:
        raise SecateursError(f"bad option: {error}") from None
    job.check()
    return job


@contextmanager
def _directory(path: str | Path | None, prefix: str) -> Iterator[Path]:
    """``path``, or a temporary directory removed afterwards."""
    if path is not None:
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        yield Path(directory)


def measure(
    model: nn.Module,
    *,
    example_input: torch.Tensor,
    baseline: nn.Module | None = None,
    batch_sizes: Sequence[int] = (1, 64),
    backends: Sequence[str] = ("eager", "onnxruntime"),
    repeats: int = 30,
    threads: int = 2,
) -> Measurement:
    """MACs, parameters and latency of ``model``; with a ``baseline``, both are timed
    interleaved (baseline, model, baseline, ...) and the speed-ups are reported."""
    input_size = tuple(example_input.shape[1:])
    settings = LatencySettings(tuple(batch_sizes), threads, repeats=repeats)
    result = Measurement(measuring.cost(model, input_size))
    if baseline is None:  # one model: timed alone
        result.latency_ms = measuring.medians(model, input_size, settings, backends)
        return result
    result.baseline_cost = measuring.cost(baseline, input_size)
    reduction = result.baseline_cost.macs / result.cost.macs
    rows = measuring.latency((baseline, model), input_size, settings, backends, reduction)
    result.latency_ms = {
        backend: {batch: entry.after_ms for batch, entry in batches.items()}
        for backend, batches in rows.items()
    }
    result.speedup = rows
    return result


def save(
    model: nn.Module | Pruned,
    directory: str | Path,
    *,
    manifest: Manifest | None = None,
    example_input: torch.Tensor | None = None,
) -> Path:
    """Write ``model`` (or a :class:`Pruned` result) to ``directory`` as safetensors + JSON.

    ``manifest``: the manifest of the model it came from (``load``'s second value), so its
    architecture, classes and normalisation carry over and earlier pruning accumulates. Without
    one the model is recorded as a custom class, which :func:`load` rebuilds from an un-pruned
    instance given as ``base``."""
    pruned = model if isinstance(model, Pruned) else None
    module = pruned.model if pruned else model
    if manifest is None:
        manifest = _custom_manifest(module, pruned, example_input)
    if pruned is not None:
        record = pruned.record.after(manifest.pruning)
        manifest = replace(manifest, pruning=record)
    return save_model(module, directory, manifest)


def _custom_manifest(
    module: nn.Module, pruned: Pruned | None, example_input: torch.Tensor | None
) -> Manifest:
    if example_input is None and pruned is None:
        raise SecateursError("save needs example_input (or a manifest) to record the input size")
    size = list(pruned.input_size if pruned else example_input.shape[1:])  # type: ignore[union-attr]
    was_training = module.training
    with torch.no_grad():
        classes = module.eval()(torch.zeros(1, *size, device=model_device(module))).shape[-1]
    module.train(was_training)
    kind = type(module)
    return Manifest(
        f"{CUSTOM_PREFIX}{kind.__module__}.{kind.__qualname__}",
        {},
        [str(index) for index in range(classes)],
        size,
        [0.0] * size[0],
        [1.0] * size[0],
    )


def load(
    directory: str | Path,
    *,
    base: nn.Module | None = None,
    allow_factory: bool = False,
    device: str | torch.device | None = None,
) -> tuple[nn.Module, Manifest]:
    """The model saved in ``directory`` (eval mode) and its manifest. ``base``: an un-pruned
    instance of the model's class, for classes secateurs does not know: the recorded pruning is
    replayed on it and the weights loaded, so nothing is unpickled. ``allow_factory``: a model
    imported from your code (``package.module:factory``) is rebuilt by importing and calling the
    factory its manifest names (never done without it). ``device``: where to put the model."""
    if allow_factory:
        architecture = read_manifest(directory).architecture
        if architecture.startswith(FACTORY_PREFIX):
            allow_factory_spec(architecture.removeprefix(FACTORY_PREFIX))
    model, manifest = load_model(directory, base)
    return model.to(resolve_device(device)) if device is not None else model, manifest


def import_model(
    spec: str,
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    input_size: Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    data: str | Path | None = None,
    strict: bool = False,
) -> tuple[nn.Module, Manifest]:
    """A model built from ``spec`` (``torchvision:NAME``, ``timm:NAME``, ``package.module:
    factory`` or a registered name) with ``weights`` trained elsewhere (safetensors, or a
    state_dict read with ``weights_only=True``), and the manifest that rebuilds it, as ``secateurs
    import`` makes them; :func:`save` writes them (``manifest=``). Nothing is downloaded."""
    from secateurs.importing import ImportJob
    from secateurs.importing import import_model as build

    job = ImportJob(
        spec=spec,
        weights=None if weights is None else Path(weights),
        num_classes=num_classes,
        input_size=None if input_size is None else tuple(input_size),
        mean=None if mean is None else tuple(mean),
        std=None if std is None else tuple(std),
        data=None if data is None else str(data),
        strict=strict,
    )
    imported = build(job)
    return imported.model, imported.manifest
