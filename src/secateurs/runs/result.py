"""The end of a run: the report assembled from what the run measured, the model saved beside it."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from torch import nn

from secateurs.measurement.machine import machine_info
from secateurs.report import (
    Accuracy,
    Cost,
    Machine,
    PruningRecord,
    Report,
    RunSettings,
    write_report,
)
from secateurs.report.markdown import slower_note
from secateurs.runs import measuring
from secateurs.runs.run_dir import Run
from secateurs.store import Manifest, save_model

log = logging.getLogger(__name__)


def assemble_report(
    run: Run,
    models: tuple[nn.Module, nn.Module],
    manifest: Manifest,
    pruning: PruningRecord,
    accuracies: dict[str, Accuracy | None],
    **settings: Any,
) -> Report:
    """The report of ``models`` = (unpruned, pruned): cost counted on both (``cost_after`` in
    ``settings`` overrides the pruned one's, for layers whose MACs a counter cannot see), latency
    timed interleaved, and ``settings`` (RunSettings fields) over the job's."""
    original, model = models
    cost_before = measuring.cost(original, manifest.input_size)
    cost_after: Cost = settings.pop("cost_after", None) or measuring.cost(
        model, manifest.input_size
    )
    if pruning.target_kind != "latency":  # a latency ratio is the one the allocation measured
        kept = cost_after.macs if pruning.target_kind == "macs" else cost_after.params
        total = cost_before.macs if pruning.target_kind == "macs" else cost_before.params
        pruning = replace(pruning, achieved_ratio=round(kept / total, 5))
    job = run.job
    return Report(
        settings=RunSettings(
            kind=run.kind,
            model=manifest.architecture,
            model_dir=str(job.model),
            seed=job.seed,
            latency_threads=job.threads,
            latency_repeats=job.latency_repeats,
            machine=Machine(**machine_info(job.threads)),
            **settings,
        ),
        pruning=pruning,
        cost_before=cost_before,
        cost_after=cost_after,
        accuracy={stage: found for stage, found in accuracies.items() if found is not None},
        latency=measuring.latency(
            (original, model),
            manifest.input_size,
            measuring.timing(job),
            job.latency_backends,
            cost_before.macs / cost_after.macs,
        ),
    )


def finish(run: Run, model: nn.Module, manifest: Manifest, report: Report) -> Report:
    """Save the pruned model with the report's headline figures in its manifest, and write
    report.json, report.md and report.png."""
    after = report.accuracy.get("after")
    metrics = {
        "top1_after": after.top1 if after else None,
        "top5_after": after.top5 if after else None,
        "macs_after": report.cost_after.macs,
        "params_after": report.cost_after.params,
    }
    save_model(model, run.directory, replace(manifest, metrics=metrics))
    write_report(report, run.directory)
    if report.slower:
        log.warning("%s (%s)", slower_note(report), run.directory / "report.md")
    return report
