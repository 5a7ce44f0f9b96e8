"""A whole pruning run, as ``secateurs prune`` does it: measure the model, prune it, fine-tune it,
measure again side by side, and write the pruned model with its report.

Output directory layout: ``model.safetensors`` + ``manifest.json`` (the pruned, fine-tuned model),
``report.json``/``report.md``/``report.png``, ``oneshot/`` (the model right after pruning) and
``finetune/`` (the fine-tuning run and its ``config.json``, checkpointed every epoch: ``--resume``
continues it).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.data import BatchLoader, ImageSet, load_split
from secateurs.errors import SecateursError
from secateurs.measure import LatencySettings, compare, count_cost, evaluate
from secateurs.measure.cost import params_by_layer_type
from secateurs.pruning.allocation import Allocation, Target
from secateurs.pruning.bn_recalibration import recalibrate_batchnorm
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods import ScoringData, create_method
from secateurs.pruning.prune import prune_model
from secateurs.report import write_report
from secateurs.store import Manifest, load_model, save_model
from secateurs.train.config import TrainConfig
from secateurs.train.run import CONFIG_FILE
from secateurs.train.trainer import Trainer

log = logging.getLogger(__name__)
# Kept channel counts are exact by default. A single 3x3 convolution here is a step function of its
# width with steps at multiples of 16 (docs/results/channel-multiple.md), but whole ResNet-20
# plans rounded to 16 ran slower at batch 64 than exact ones at the same MACs (1.21-1.30x vs
# 1.44-1.47x, docs/results/pruning-baselines.md): the measured end-to-end answer wins.
DEFAULT_ROUND_TO = 1
# fine-tuning keeps the augmentation and regularisation the model was trained with
FINETUNE_INHERITS = (
    "padding",
    "flip",
    "alternate_flip",
    "cutout",
    "label_smoothing",
    "weight_decay",
    "decay_norm",
    "momentum",
    "nesterov",
)


@dataclass
class PruneJob:
    model_dir: Path
    method: str
    out: Path
    target_kind: str = "macs"
    target_ratio: float = 0.5
    layer_ratios: dict[str, float] | None = None
    strategy: str = "global"
    normalize: str | None = None  # None: the method's default
    round_to: int = DEFAULT_ROUND_TO
    min_channels: int = 1
    data: str | None = None
    image_size: int | None = None
    finetune_epochs: int = 0
    finetune_lr: float = 0.01
    batch_size: int = 128
    scoring_batches: int = 8
    steps: int = 1
    seed: int = 0
    threads: int = 2
    latency_batches: tuple[int, ...] = (1, 64)
    latency_repeats: int = 30
    train_subset: int | None = None
    test_subset: int | None = None
    resume: bool = False
    method_params: dict[str, Any] = field(default_factory=dict)  # e.g. {"selection": ...}
    fold_bias: bool = False  # fold removed channels' mean contribution into their consumers
    recalibrate_bn: int = 0  # re-estimate BatchNorm statistics on this many batches after pruning
    distill: float = 0.0  # > 0: fine-tune with the unpruned model as teacher, at this weight


def check_job(job: PruneJob) -> None:
    """Reject bad input before anything is written."""
    from secateurs.pruning.methods import method_class

    method_class(job.method)
    try:
        create_method(job.method, seed=job.seed, **job.method_params)
    except TypeError as error:
        raise SecateursError(f"bad parameter for method {job.method!r}: {error}") from None
    if job.layer_ratios is None:
        Target(job.target_kind, job.target_ratio)
    if job.finetune_epochs < 0 or job.steps < 1:
        raise SecateursError("fine-tuning epochs must be >= 0 and steps >= 1")
    if job.layer_ratios is not None and job.steps > 1:
        raise SecateursError("--layer-ratios prunes in one step (repeating would compound)")
    for name in ("batch_size", "scoring_batches", "threads", "round_to"):
        if getattr(job, name) < 1:
            raise SecateursError(f"{name.replace('_', ' ')} must be at least 1")
    if job.latency_repeats < 0:
        raise SecateursError("latency repeats must be >= 0 (0: no timing)")
    if job.finetune_epochs and not job.data:
        raise SecateursError("fine-tuning needs --data")
    if job.fold_bias and not job.data:
        raise SecateursError("--fold-bias measures channel means on data: pass --data")
    if job.recalibrate_bn < 0:
        raise SecateursError("--recalibrate-bn takes a number of batches >= 0")
    if job.recalibrate_bn and not job.data:
        raise SecateursError("--recalibrate-bn runs training images through the model: pass --data")
    if not 0 <= job.distill <= 1:
        raise SecateursError(f"--distill takes a weight in [0, 1], not {job.distill}")
    if job.distill and not job.finetune_epochs:
        raise SecateursError("--distill applies to fine-tuning: pass --finetune-epochs")
    if job.out.exists() and not job.out.is_dir():
        raise SecateursError(f"{job.out} is a file; -o takes a directory")
    if job.out.exists() and any(job.out.iterdir()) and not job.resume:
        raise SecateursError(f"{job.out} exists and is not empty; choose another -o (or --resume)")


def load_job_data(job: Any, manifest: Manifest) -> tuple[ImageSet | None, ImageSet | None]:
    if not job.data:
        return None, None
    # read the images as the model's training did, unless the job says otherwise
    image_size = getattr(job, "image_size", None) or manifest.image_size
    train_set = load_split(job.data, "train", image_size)
    test_set = load_split(job.data, "test", image_size)
    if job.train_subset:
        train_set = train_set.subset(job.train_subset, job.seed)
    if job.test_subset:
        test_set = test_set.subset(job.test_subset, job.seed)
    if test_set.classes != manifest.classes or list(test_set.input_size) != manifest.input_size:
        raise SecateursError(
            f"{job.data} ({len(test_set.classes)} classes, {test_set.input_size}) is not the data "
            f"{job.model_dir} was trained for ({len(manifest.classes)} classes, "
            f"{tuple(manifest.input_size)})"
        )
    return train_set, test_set


def _scoring_data(job: PruneJob, train_set: ImageSet | None, manifest: Manifest) -> ScoringData:
    if train_set is None:
        return ScoringData()
    sample = train_set.subset(job.scoring_batches * job.batch_size, job.seed)
    loader = BatchLoader(sample, job.batch_size, manifest.mean, manifest.std)
    return ScoringData(list(loader))


def _recalibrate(model: nn.Module, job: PruneJob, train_set: ImageSet, manifest: Manifest) -> int:
    """BatchNorm statistics re-estimated on ``job.recalibrate_bn`` batches of un-augmented
    training images (the scoring sample's draw, extended)."""
    sample = train_set.subset(min(job.recalibrate_bn * job.batch_size, len(train_set)), job.seed)
    loader = BatchLoader(sample, job.batch_size, manifest.mean, manifest.std)
    return recalibrate_batchnorm(model, (images for images, _ in loader))


def measure_accuracy(
    model: nn.Module, test_set: ImageSet | None, manifest: Manifest
) -> dict[str, float]:
    if test_set is None:
        return {}
    return evaluate(model, BatchLoader(test_set, 256, manifest.mean, manifest.std))


def _fine_tune(
    model, job, train_set, test_set, manifest, epochs, run_dir, original
) -> dict[str, Any]:
    """Fine-tune ``model`` in place; with ``job.distill``, a copy of ``original`` teaches it."""
    recipe = {key: manifest.training[key] for key in FINETUNE_INHERITS if key in manifest.training}
    if job.distill:
        recipe.update(teacher=[str(job.model_dir)], distill_weight=job.distill)
    config = TrainConfig(
        model=str(job.model_dir),
        data=str(job.data),
        epochs=epochs,
        batch_size=job.batch_size,
        lr=job.finetune_lr,
        warmup_epochs=0,
        seed=job.seed,
        threads=job.threads,
        **recipe,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    teacher = copy.deepcopy(original) if job.distill else None
    trainer = Trainer(
        model, train_set, test_set, config, run_dir, manifest.mean, manifest.std, teacher=teacher
    )
    trainer.resume()
    history = trainer.fit()
    return {"epochs": len(history), "seconds": sum(r["epoch_seconds"] for r in history)}


def _channels(before: ChannelGraph, after_model: nn.Module) -> dict[str, dict[str, int]]:
    after = {g.root: g.size for g in ChannelGraph(after_model, before.input_size).groups}
    return {
        g.root: {"before": g.size, "after": after.get(g.root, g.size)}
        for g in before.groups
        if g.prunable
    }


def run_prune(job: PruneJob) -> dict[str, Any]:
    """Do the whole run; returns the report (also written to ``job.out``)."""
    check_job(job)
    torch.manual_seed(job.seed)
    original, manifest = load_model(job.model_dir)
    train_set, test_set = load_job_data(job, manifest)
    input_size = manifest.input_size
    method = create_method(job.method, seed=job.seed, **job.method_params)
    target = None if job.layer_ratios is not None else Target(job.target_kind, job.target_ratio)
    allocation = Allocation(
        strategy=job.strategy,
        normalize=job.normalize,
        round_to=job.round_to,
        min_channels=job.min_channels,
    )
    oneshot_dir = job.out / "oneshot"
    before_graph = ChannelGraph(original, input_size)
    accuracy_before = measure_accuracy(original, test_set, manifest)
    if job.resume and (oneshot_dir / "manifest.json").exists():
        model, pruned_manifest = load_model(oneshot_dir)
        pruning_seconds = pruned_manifest.metrics.get("pruning_seconds", 0.0)
        uncalibrated = pruned_manifest.metrics.get("top1_oneshot_uncalibrated")
        certificate = (pruned_manifest.pruning or {}).get("certificate", [])
        log.info("resuming from the pruned model in %s", oneshot_dir)
    else:
        model = copy.deepcopy(original)
        steps_epochs = job.finetune_epochs // job.steps if job.steps > 1 else 0

        def between(pruned: nn.Module, step: int) -> None:
            if steps_epochs and train_set is not None:
                _fine_tune(
                    pruned,
                    job,
                    train_set,
                    test_set,
                    manifest,
                    steps_epochs,
                    job.out / f"step{step + 1}",
                    original,
                )

        outcome = prune_model(
            model,
            input_size,
            method,
            target,
            allocation,
            _scoring_data(job, train_set, manifest),
            job.layer_ratios,
            job.steps,
            between,
            job.fold_bias,
        )
        record = outcome.record(method, target)
        previous = manifest.pruning or {}
        record["rounds"] = list(previous.get("rounds", [])) + record["rounds"]
        if outcome.certificate:
            record["certificate"] = outcome.certificate
        if outcome.folds:
            record["bias_fold"] = outcome.folds
        record["mode"] = outcome.selection(method)
        certificate = outcome.certificate
        metrics: dict[str, Any] = {"pruning_seconds": round(outcome.seconds, 3)}
        uncalibrated = None
        if job.recalibrate_bn and train_set is not None:
            uncalibrated = measure_accuracy(model, test_set, manifest).get("top1")
            metrics["top1_oneshot_uncalibrated"] = uncalibrated
            used = _recalibrate(model, job, train_set, manifest)
            log.info("BatchNorm statistics re-estimated on %d batches", used)
        pruned_manifest = replace(manifest, pruning=record, metrics=metrics)
        pruning_seconds = outcome.seconds
        save_model(model, oneshot_dir, pruned_manifest)
    accuracy_oneshot = measure_accuracy(model, test_set, manifest)
    finetune: dict[str, Any] = {"epochs": 0, "seconds": 0.0}
    final_epochs = job.finetune_epochs - (job.finetune_epochs // job.steps) * (job.steps - 1)
    if job.finetune_epochs and train_set is not None and final_epochs > 0:
        finetune = _fine_tune(
            model.train(),
            job,
            train_set,
            test_set,
            manifest,
            final_epochs,
            job.out / "finetune",
            original,
        )
    model.eval()
    accuracy_after = measure_accuracy(model, test_set, manifest)
    report = _measure(job, original, model, manifest, before_graph)
    report.update(
        top1_before=accuracy_before.get("top1"),
        top5_before=accuracy_before.get("top5"),
        top1_oneshot=accuracy_oneshot.get("top1"),
        top5_oneshot=accuracy_oneshot.get("top5"),
        top1_after=accuracy_after.get("top1"),
        top5_after=accuracy_after.get("top5"),
        test_images=accuracy_after.get("n"),
        pruning_seconds=round(pruning_seconds, 3),
        finetune_epochs=finetune["epochs"],
        finetune_seconds=round(finetune["seconds"], 1),
        method_params=method.params(),
        strategy=job.strategy,
        steps=job.steps,
        round_to=job.round_to,
        normalize=job.normalize,
        bias_fold=job.fold_bias,
        bn_recalibration_batches=job.recalibrate_bn,
        distill_weight=job.distill,
        top1_oneshot_uncalibrated=uncalibrated,
        selection=str((pruned_manifest.pruning or {}).get("mode", "deterministic")),
    )
    if certificate:
        report["certificate"] = certificate
    pruned_manifest.metrics = {
        key: report[key] for key in ("top1_after", "top5_after", "macs_after", "params_after")
    }
    save_model(model, job.out, pruned_manifest)
    write_report(report, job.out)
    return report


def _measure(job, original, model, manifest, before_graph) -> dict[str, Any]:
    input_size = manifest.input_size
    cost_before = count_cost(original, input_size)
    cost_after = count_cost(model, input_size)
    settings = LatencySettings(job.latency_batches, job.threads, repeats=job.latency_repeats)
    # latency_repeats = 0 skips timing (e.g. when runs share the machine and are timed later)
    timings = (
        compare([original.eval(), model.eval()], input_size, settings) if settings.repeats else {}
    )
    reduction = cost_before["macs"] / cost_after["macs"]
    latency = {
        str(batch): {
            "before_ms": round(rows[0]["median"], 4),
            "after_ms": round(rows[1]["median"], 4),
            "speedup": round(rows[1]["ratio"], 4),
            "realisation": round(rows[1]["ratio"] / reduction, 4),
        }
        for batch, rows in timings.items()
    }
    return {
        "model": manifest.architecture,
        "model_dir": str(job.model_dir),
        "method": job.method,
        "target_kind": job.target_kind,
        # per-layer ratios set no target: the achieved ratio is still the MACs (or params) kept
        "target_ratio": job.target_ratio if job.layer_ratios is None else None,
        "layer_ratios": job.layer_ratios,
        "achieved_ratio": round(cost_after[job.target_kind] / cost_before[job.target_kind], 5),
        "macs_before": cost_before["macs"],
        "macs_after": cost_after["macs"],
        "params_before": cost_before["params"],
        "params_after": cost_after["params"],
        # parameters of the fully-connected (linear) layers, e.g. WSP's pruned classifier head
        "fc_params_before": params_by_layer_type(original)["linear"],
        "fc_params_after": params_by_layer_type(model)["linear"],
        "latency": latency,
        "latency_threads": job.threads,
        "channels": _channels(before_graph, model),
    }
