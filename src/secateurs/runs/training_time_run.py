"""A training-time pruning run (``secateurs spp|sgcnn|campfire|taylor-gradual``, any registered
training-time method, and ``secateurs.prune_while_training``): train the model with the method's
callback, compact what it pruned, check that the compact model computes what the masked one did,
measure both side by side, and write the result with its report.

The method prunes *during* training, so there is no separate one-shot step: the training run
(``train/``, checkpointed every epoch with the method's state; ``--resume`` continues it) both
prunes and retrains. :func:`train_and_compact` is that core, shared by the command
(:func:`run_training_time`) and the Python API, so the two make the same model.

Output directory: ``config.json``, ``model.safetensors`` + ``manifest.json`` (the compacted
model; its manifest records what to replay on the base architecture, so it reloads from JSON
alone), ``masked/`` (the trained model with pruned weights at zero, before compaction),
``report.json``/``report.md``/``report.png``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.data import LabelledData
from secateurs.device import model_device
from secateurs.errors import SecateursError
from secateurs.options import check_fields, count, declared, fraction, option, positive
from secateurs.pruning.compaction.dead_channels import max_relative_difference
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.training_time import (
    Compaction,
    TrainingRun,
    TrainingTimeMethod,
    training_time_method,
)
from secateurs.report import Cost, PruningRecord, Report
from secateurs.runs.data import load_run_data
from secateurs.runs.job import RunJob
from secateurs.runs.measuring import accuracy, timing
from secateurs.runs.result import assemble_report, finish
from secateurs.runs.run_dir import open_run
from secateurs.runs.training import Training, inherited_recipe, train_model
from secateurs.store import Manifest, load_model, save_model
from secateurs.train.config import TrainConfig
from secateurs.train.distributed import DistributedContext, init_distributed

EQUALITY_TOLERANCE = 1e-4  # max relative difference, compacted vs masked model outputs


@dataclass(kw_only=True)
class TrainingJob(RunJob):
    """A training-time run: the options every training-time method shares (data, required;
    the MACs target; the training's length and learning rate), the ``method``'s name and its
    own ``options`` (an instance of the method's ``Options`` dataclass; a dict of its fields,
    or None for its defaults, is converted)."""

    data: str = option(help="data set root (training and test)")
    target_macs: float = fraction(0.5, "keep this fraction of the MACs")
    epochs: int = count(10, "total epochs of training, pruning included")
    lr: float = option(0.01, "peak learning rate (cosine)", parse=float, check=positive)
    method: str = option("", help="the training-time method (its command)", cli=False)
    options: Any = option(None, help="the method's own options", cli=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        options_type = training_time_method(self.method).Options
        if self.options is None:
            self.options = options_type()
        elif isinstance(self.options, dict):
            self.options = method_options(self.method, self.options)

    @classmethod
    def for_method(cls, method: str, **values: Any) -> TrainingJob:
        """The job of ``method`` from keyword arguments: the shared options by their names, the
        rest the method's own (``TrainingJob.for_method("spp", granularity="channel", ...)``)."""
        shared = {f.name for f, _ in declared(cls)}
        own = {key: values.pop(key) for key in list(values) if key not in shared}
        return cls(method=method, options=method_options(method, own), **values)

    def check(self) -> None:
        super().check()
        check_fields(self.options)

    def make_method(self, input_size: Sequence[int]) -> TrainingTimeMethod:
        """The method these options describe, for a model taking ``input_size`` inputs."""
        run = TrainingRun(tuple(input_size), self.epochs, self.target_macs, self.seed)
        return training_time_method(self.method).build(self.options, run)


def method_options(method: str, given: dict[str, Any]) -> Any:
    """``method``'s ``Options`` from keyword arguments; an unknown name is a one-line error."""
    options_type = training_time_method(method).Options
    known = [f.name for f, _ in declared(options_type)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SecateursError(
            f"{method} has no option {', '.join(unknown)} (its options: {', '.join(known)})"
        )
    return options_type(**given)


@dataclass
class TrainedAndCompacted:
    """What :func:`train_and_compact` made: the compact model, the masked model it came from,
    the method, its compaction and report record, and the training."""

    model: nn.Module
    masked: nn.Module
    method: TrainingTimeMethod
    compaction: Compaction
    record: PruningRecord
    training: Training


def train_and_compact(
    job: TrainingJob,
    original: nn.Module,
    manifest: Manifest,
    data: LabelledData,
    directory: Path,
    context: DistributedContext | None = None,
    every_rank: bool = False,
) -> TrainedAndCompacted | None:
    """Train a copy of ``original`` with ``job``'s method (checkpoints in ``directory/train``),
    then compact it and check it against the masked model. Under ``torchrun`` the ranks other
    than 0 only train and return None, unless ``every_rank`` (the Python API, whose every rank
    returns a model) has each compact its own copy."""
    input_size = manifest.input_size
    context = context or init_distributed(model_device(original))
    method = job.make_method(input_size)
    attach_latency(job, method)
    method.prepare(original, data)
    # compaction traces the model after training: a model Torch-Pruning cannot trace fails now
    ChannelGraph(copy.deepcopy(original), input_size)
    model = copy.deepcopy(original).train()
    callbacks = [method.callback()]
    recipe = training_recipe(job, manifest, method)
    training = train_model(
        model, data, recipe, directory / "train", callbacks=callbacks, context=context
    )
    if not (context.is_main or every_rank):
        return None
    masked = copy.deepcopy(model.eval())
    # 0 repeats: layers compacted untimed (rerun with --resume on a quiet machine to time)
    compaction = method.compact(model, input_size, timing(job))
    record = method.pruning_record(compaction)
    record.details["compacted_vs_masked_max_rel_diff"] = _check_equal(
        model, masked, input_size, job.seed
    )
    return TrainedAndCompacted(model, masked, method, compaction, record, training)


def run_training_time(job: TrainingJob) -> Report | None:
    """Do the whole run; returns the report (also written to ``job.out``). Under ``torchrun``
    every rank trains; rank 0 compacts, measures and writes, the others return None."""
    with open_run(job.method, job) as run:
        torch.manual_seed(job.seed)
        original, manifest = load_model(job.model, device=run.device)
        data = load_run_data(job, manifest)
        assert data is not None  # TrainingJob: data is required
        before = accuracy(original, data)
        done = train_and_compact(job, original, manifest, data, job.out, run.context)
        if done is None:
            return None
        masked_accuracy = accuracy(done.masked, data)
        save_model(
            done.masked, job.out / "masked", replace(manifest, metrics=vars(masked_accuracy))
        )
        written = done.method.write_files(job.out)
        if written:
            done.record.details["files"] = written
        report = assemble_report(
            run,
            (original, done.model),
            manifest,
            done.record,
            {"before": before, "masked": masked_accuracy, "after": accuracy(done.model, data)},
            cost_after=_cost(done.compaction),
            training_epochs=len(done.training.history),
            training_seconds=done.training.seconds,
        )
        pruning = done.method.manifest_record(manifest.pruning, done.compaction)
        return finish(run, done.model, replace(manifest, pruning=pruning), report)


def attach_latency(job: TrainingJob, method: TrainingTimeMethod) -> None:
    """Build the latency source ``method`` asks for, if any (gradual Taylor's
    ``--target-latency``: a :class:`~secateurs.latency.gradual.GradualLatency` on the job's
    threads and timed rounds) and hand it in: the run sits above both the engine and
    ``secateurs.latency``, so the engine never imports the latency side."""
    request = method.latency_request()
    if request is None:
        return
    from secateurs.latency import LatencySource, LatencySpec
    from secateurs.latency.gradual import GradualLatency

    spec = LatencySpec(
        request.backend,
        request.batch,
        job.threads,
        model_repeats=job.latency_repeats or 30,
        cache=request.cache,
    )
    method.use_latency(GradualLatency(LatencySource(spec)))


def training_recipe(
    job: TrainingJob, manifest: Manifest, method: TrainingTimeMethod
) -> TrainConfig:
    """The run's training: the job's epochs and lr, the model's own augmentation and
    regularisation (as fine-tuning in ``secateurs prune``), the method's own settings."""
    return inherited_recipe(
        manifest,
        model=str(job.model),
        data=str(job.data),
        epochs=job.epochs,
        batch_size=job.batch_size,
        lr=job.lr,
        seed=job.seed,
        threads=job.threads,
        **method.recipe_settings(),
    )


def _check_equal(model: nn.Module, masked: nn.Module, input_size, seed: int) -> float:
    """The compacted model computes what the masked one did, or the run stops here."""
    model.eval()
    with torch.no_grad():
        images = torch.randn(8, *input_size, generator=torch.Generator().manual_seed(seed))
        difference = max_relative_difference(model(images), masked(images))
    if not difference <= EQUALITY_TOLERANCE:  # NaN included
        raise AssertionError(f"the compacted model differs from the masked one by {difference}")
    return difference


def _cost(compaction: Compaction) -> Cost | None:
    """The method's own count where it gives one, else the compacted model's."""
    if compaction.macs is None or compaction.params is None:
        return None
    return Cost(compaction.macs, compaction.params)
