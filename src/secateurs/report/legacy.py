"""Reading version-1 reports: the flat ``report.json`` that secateurs wrote before
:class:`~secateurs.report.schema.Report` existed (no ``schema_version``).

Its keys map onto the typed report one to one, with two renamings: an SPP run stored its
training time as ``pruning_seconds`` and its training epochs as ``finetune_epochs``.
"""

from __future__ import annotations

import math
from typing import Any

from secateurs.report import schema
from secateurs.report.schema import Accuracy, Cost, Latency, PruningRecord, Report, RunSettings

_SPP_DETAILS = ("spp", "compact_layers", "compacted_vs_masked_max_rel_diff")


def report_from_v1(data: dict[str, Any]) -> Report:
    """The typed report of a version-1 flat dictionary."""
    spp = "spp" in data or "granularity" in data
    report = Report(
        settings=_settings(data, spp),
        pruning=_pruning(data),
        cost_before=Cost(data["macs_before"], data["params_before"], data.get("fc_params_before")),
        cost_after=Cost(data["macs_after"], data["params_after"], data.get("fc_params_after")),
        accuracy=_accuracy(data),
        latency={
            "eager": {
                # figures a report lacks are unknown (NaN), not invented
                str(batch): Latency(
                    **{key: entry.get(key, math.nan) for key in Latency.__dataclass_fields__}
                )
                for batch, entry in (data.get("latency") or {}).items()
            }
        },
        schema_version=1,
    )
    if not report.latency["eager"]:
        report.latency = {}
    schema._check_numbers(report)
    return report


def _settings(data: dict[str, Any], spp: bool) -> RunSettings:
    seconds = float(data.get("pruning_seconds") or 0.0)
    return RunSettings(
        kind="spp" if spp else "prune",
        model=str(data["model"]),
        model_dir=str(data.get("model_dir", "")),
        seed=int((data.get("method_params") or {}).get("seed", 0)),
        pruning_seconds=0.0 if spp else seconds,
        training_epochs=int(data.get("finetune_epochs") or 0),
        training_seconds=seconds if spp else float(data.get("finetune_seconds") or 0.0),
        distill_weight=float(data.get("distill_weight") or 0.0),
        bn_recalibration_batches=int(data.get("bn_recalibration_batches") or 0),
        latency_threads=int(data.get("latency_threads") or 2),
    )


def _pruning(data: dict[str, Any]) -> PruningRecord:
    return PruningRecord(
        method=str(data["method"]),
        target_kind=str(data.get("target_kind", "macs")),
        target_ratio=data.get("target_ratio"),
        achieved_ratio=float(data.get("achieved_ratio", data["macs_after"] / data["macs_before"])),
        method_params=dict(data.get("method_params") or {}),
        layer_ratios=data.get("layer_ratios"),
        selection=str(data.get("selection", "deterministic")),
        strategy=data.get("strategy"),
        normalize=data.get("normalize"),
        round_to=int(data.get("round_to") or 1),
        steps=int(data.get("steps") or 1),
        bias_fold=bool(data.get("bias_fold")),
        granularity=data.get("granularity"),
        channels=dict(data.get("channels") or {}),
        certificate=list(data.get("certificate") or []),
        details={key: data[key] for key in _SPP_DETAILS if key in data},
    )


def _accuracy(data: dict[str, Any]) -> dict[str, Accuracy]:
    stages = {}
    for stage in ("before", "oneshot", "oneshot_uncalibrated", "masked", "after"):
        top1, top5 = data.get(f"top1_{stage}"), data.get(f"top5_{stage}")
        if top1 is not None or top5 is not None:
            stages[stage] = Accuracy(top1, top5, data.get("test_images"))
    return stages
