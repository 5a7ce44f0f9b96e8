"""A whole pruning run, as ``secateurs prune`` does it: measure the model, prune it, fine-tune
it, measure again side by side, and write the pruned model with its report.

Output directory: ``config.json`` (the run's options), ``model.safetensors`` + ``manifest.json``
(the pruned, fine-tuned model), ``report.json``/``report.md``/``report.png``, ``oneshot/`` (the
model right after pruning: ``--resume`` starts from it), ``step<N>/`` (fine-tuning between
steps) and ``finetune/`` (the fine-tuning, checkpointed every epoch: ``--resume`` continues it).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from secateurs.data import LabelledData
from secateurs.pruning.bn_recalibration import recalibrate_batchnorm
from secateurs.pruning.floor import Floor, floor_record
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods import ScoringData, create_method
from secateurs.pruning.prune import prune_model
from secateurs.pruning.record import BiasFold, Certificate, ManifestPruning, OneShotPrune
from secateurs.report import Accuracy, PruningRecord, Report
from secateurs.runs.data import load_run_data
from secateurs.runs.fine_tuning import fine_tune
from secateurs.runs.measuring import accuracy
from secateurs.runs.prune_job import PruneJob
from secateurs.runs.result import assemble_report, finish
from secateurs.runs.run_dir import Run, open_run
from secateurs.runs.training import Training
from secateurs.store import Manifest, load_model, save_model
from secateurs.train.distributed import barrier

log = logging.getLogger(__name__)


@dataclass
class Pruned:
    """The model right after pruning, its manifest, and what the pruning step measured."""

    model: nn.Module
    manifest: Manifest
    seconds: float = 0.0
    uncalibrated: Accuracy | None = None
    certificate: list[dict[str, Any]] = field(default_factory=list)
    step_epochs: int = 0  # fine-tuning between steps (--steps > 1), before the final one


def run_prune(job: PruneJob) -> Report | None:
    """Do the whole run; returns the report (also written to ``job.out``). Under ``torchrun``
    every rank prunes and fine-tunes; rank 0 measures and writes, the others return None."""
    with open_run("prune", job) as run:
        torch.manual_seed(job.seed)
        original, manifest = load_model(job.model, device=run.device)
        data = load_run_data(job, manifest)
        before = accuracy(original, data)
        pruned = _prune_or_resume(run, original, manifest, data)
        oneshot = accuracy(pruned.model, data)
        final_epochs = job.finetune_epochs - (job.finetune_epochs // job.steps) * (job.steps - 1)
        tune = (run, pruned.model, original, manifest, data)
        training = _fine_tune(*tune, final_epochs, "finetune")
        if not run.is_main:
            return None
        stages = {"before": before, "oneshot": oneshot, "after": accuracy(pruned.model, data)}
        stages["oneshot_uncalibrated"] = pruned.uncalibrated
        report = assemble_report(
            run,
            (original, pruned.model),
            manifest,
            _with_floor(_record(job, original, pruned), job, original, manifest),
            stages,
            pruning_seconds=round(pruned.seconds, 3),
            # every epoch of fine-tuning, the steps' included
            training_epochs=pruned.step_epochs + (len(training.history) if training else 0),
            training_seconds=training.seconds if training else 0.0,
            distill_weight=job.distill,
            bn_recalibration_batches=job.recalibrate_bn,
        )
        return finish(run, pruned.model, pruned.manifest, report)


def _prune_or_resume(
    run: Run, original: nn.Module, manifest: Manifest, data: LabelledData | None
) -> Pruned:
    """Prune a copy of ``original`` (saved to ``oneshot/``), or reload it when resuming."""
    job: PruneJob = run.job
    oneshot_dir = job.out / "oneshot"
    if job.resume and (oneshot_dir / "manifest.json").exists():
        model, saved = load_model(oneshot_dir, device=run.device)
        log.info("resuming from the pruned model in %s", oneshot_dir)
        uncalibrated = saved.metrics.get("top1_oneshot_uncalibrated")
        return Pruned(
            model,
            saved,
            saved.metrics.get("pruning_seconds", 0.0),
            None if uncalibrated is None else Accuracy(uncalibrated),
            saved.pruning.certificate_rows() if saved.pruning is not None else [],
            saved.metrics.get("step_epochs", 0),
        )
    pruned = _prune(run, original, manifest, data)
    if run.is_main:
        save_model(pruned.model, oneshot_dir, pruned.manifest)
    barrier(run.context)
    return pruned


def _prune(run: Run, original: nn.Module, manifest: Manifest, data: LabelledData | None) -> Pruned:
    job: PruneJob = run.job
    step_epochs = job.finetune_epochs // job.steps if job.steps > 1 else 0

    def between(pruned: nn.Module, step: int) -> int:
        trained = _fine_tune(run, pruned, original, manifest, data, step_epochs, f"step{step + 1}")
        return len(trained.history) if trained else 0

    return prune_copy(job, original, manifest, data, run.device, between)


def prune_copy(
    job: PruneJob,
    original: nn.Module,
    manifest: Manifest,
    data: LabelledData | None,
    device: torch.device,
    between: Callable[[nn.Module, int], int] | None = None,
) -> Pruned:
    """A copy of ``original`` pruned as ``job`` says (the command's step, and
    ``secateurs.prune``'s): scored on ``job.scoring_batches`` training batches, allocated,
    removed, BatchNorm re-estimated if asked; ``between(model, step)`` fine-tunes between steps
    and returns the epochs it trained. The manifest's pruning record accumulates."""
    model = copy.deepcopy(original).eval()
    method = create_method(job.method, seed=job.seed, **job.method_params)
    step_epochs: list[int] = []

    def after_step(pruned: nn.Module, step: int) -> None:
        step_epochs.append(between(pruned, step) if between else 0)

    scoring = ScoringData(
        data.sample(job.scoring_batches * job.batch_size, job.batch_size, job.seed, device)
        if data
        else []
    )
    outcome = prune_model(model, manifest.input_size, method, job.settings(), scoring, after_step)
    record = outcome.record(method, job.target).after(manifest.pruning)
    if outcome.certificate:
        record.certificate = Certificate(outcome.certificate)
    if outcome.folds:
        record.bias_fold = BiasFold(outcome.folds)
    pruned = Pruned(model, manifest, outcome.seconds, certificate=outcome.certificate)
    pruned.step_epochs = sum(step_epochs)
    metrics: dict[str, Any] = {"pruning_seconds": round(outcome.seconds, 3)}
    if outcome.latency_floor is not None:  # kept in oneshot/'s manifest: --resume reads it
        metrics["latency_floor"] = outcome.latency_floor
    if job.recalibrate_bn and data is not None:
        pruned.uncalibrated = accuracy(model, data)
        metrics["top1_oneshot_uncalibrated"] = (
            pruned.uncalibrated.top1 if pruned.uncalibrated else None
        )
        batches = data.sample(job.recalibrate_bn * job.batch_size, job.batch_size, job.seed, device)
        used = recalibrate_batchnorm(model, (images for images, _ in batches))
        log.info("BatchNorm statistics re-estimated on %d batches", used)
    metrics["step_epochs"] = pruned.step_epochs
    pruned.manifest = replace(manifest, pruning=record, metrics=metrics)
    return pruned


def _fine_tune(
    run: Run,
    model: nn.Module,
    original: nn.Module,
    manifest: Manifest,
    data: LabelledData | None,
    epochs: int,
    name: str,
) -> Training | None:
    """Fine-tune ``model`` in place in ``OUT/name``; with ``--distill``, a copy of ``original``
    teaches it."""
    if not epochs or data is None:
        return None
    return fine_tune(
        run.job,
        model,
        manifest,
        data,
        run.job.out / name,
        epochs=epochs,
        teacher=original,
        context=run.context,
    )


def _record(job: PruneJob, original: nn.Module, pruned: Pruned) -> PruningRecord:
    """The report's pruning record: the job's settings, the method's own, the channels kept."""
    recorded = (pruned.manifest.pruning or ManifestPruning()).oneshot or OneShotPrune()
    target = job.target
    record = PruningRecord(
        method=job.method,
        target_kind=target.kind if target else "macs",
        target_ratio=target.ratio if target else None,
        method_params=recorded.method_params,
        layer_ratios=job.layer_ratios,
        selection=str(recorded.selection),
        strategy=job.strategy,
        normalize=job.normalize,
        round_to=_round_to_used(job, recorded),
        steps=job.steps,
        bias_fold=job.fold_bias,
        channels=_channels(original, pruned),
        certificate=pruned.certificate,
        protected=list(recorded.protected),
        achieved_ratio=float(recorded.achieved),
        details=_latency_details(job),
    )
    floor = pruned.manifest.metrics.get("latency_floor")  # a latency target's, measured
    if floor is not None:  # the thinnest model the floor allows, beside the speed-up
        record.details["latency_floor"] = floor
    return record


def _round_to_used(job: PruneJob, recorded: OneShotPrune) -> int | str:
    """The channel multiple the allocation settled on (it halves the one asked for when that
    cannot meet the target); ``auto`` when widths came from a latency table."""
    if job.rounding == "auto":
        return "auto"
    used = recorded.round_to
    return job.rounding if used is None else int(used)


def _latency_details(job: PruneJob) -> dict[str, Any]:
    """Where and how pruning timed the models, when it did (a latency target, auto widths)."""
    if not job.uses_latency:
        return {}
    spec = job.latency_spec()
    return {"latency_model": {"backend": spec.backend, "batch": spec.batch,
                              "threads": spec.threads, "grid": spec.grid}}  # fmt: skip


def _channels(original: nn.Module, pruned: Pruned) -> dict[str, dict[str, int]]:
    """Channels per prunable group before and after, by the group's root layer."""
    input_size = pruned.manifest.input_size
    before = ChannelGraph(original, input_size)
    after = {g.root: g.size for g in ChannelGraph(pruned.model, input_size).groups}
    return {
        g.root: {"before": g.size, "after": after.get(g.root, g.size)}
        for g in before.groups
        if g.prunable
    }


def _with_floor(
    record: PruningRecord, job: PruneJob, original: nn.Module, manifest: Manifest
) -> PruningRecord:
    """``record`` with the channel floor the allocation kept to in ``details["floor"]``
    (:func:`~secateurs.pruning.floor.floor_record`, on the unpruned model's groups)."""
    graph = ChannelGraph(original, manifest.input_size)
    floor = Floor(job.min_fraction, job.ends_min_fraction, job.min_channels)
    record.details["floor"] = floor_record(graph, floor)
    return record
