"""The typed report: report.json files written before the types existed (schema 1, flat, two
examples checked in from the last version that wrote them) still load with every figure in its
place; schema 2 round-trips; what is not a report is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secateurs.errors import SecateursError
from secateurs.report import SCHEMA_VERSION, Report, markdown, read_report

EXAMPLES = Path(__file__).parent / "data" / "reports"


def test_a_version_1_pruning_report_loads_with_every_figure_in_place() -> None:
    report = read_report(EXAMPLES / "prune-v1.json")
    assert report.schema_version == 1 and report.settings.kind == "prune"
    assert (report.settings.model, report.pruning.method) == ("resnet20", "pfp")
    assert (report.cost_before.macs, report.cost_after.macs) == (2_570_122, 1_292_214)
    assert (report.cost_before.params, report.cost_after.params) == (272_186, 72_094)
    assert (report.cost_before.fc_params, report.cost_after.fc_params) == (650, 250)
    assert report.top1("before") == 10.15625 and report.top1("oneshot") == 7.03125
    assert report.top1("after") == 9.375 and report.top1("oneshot_uncalibrated") == 7.8125
    assert report.accuracy["after"].images == 128
    assert (report.settings.training_epochs, report.settings.bn_recalibration_batches) == (1, 1)
    assert report.settings.pruning_seconds == 1.515 and report.settings.latency_threads == 1
    assert report.pruning.achieved_ratio == 0.50278 and report.pruning.target_ratio == 0.5
    assert report.pruning.channels["conv1"] == {"before": 16, "after": 15}
    assert len(report.pruning.certificate) == 12
    assert set(report.latency) == {"eager"} and set(report.latency["eager"]) == {"1", "64"}
    assert markdown(report).startswith("# Pruning report: resnet20 with pfp")


def test_a_version_1_spp_report_keeps_its_training_time_as_training() -> None:
    report = read_report(EXAMPLES / "spp-v1.json")
    assert report.settings.kind == "spp" and report.pruning.granularity == "column"
    # version 1 stored SPP's training time as pruning_seconds and its epochs as finetune_epochs
    assert report.settings.training_seconds == 0.3 and report.settings.pruning_seconds == 0.0
    assert report.settings.training_epochs == 2
    assert report.top1("masked") == 14.84375 and report.accuracy["after"].top5 == 53.125
    assert {"spp", "compact_layers", "compacted_vs_masked_max_rel_diff"} <= set(
        report.pruning.details
    )
    row = report.latency["eager"]["1"]
    assert (row.before_ms, row.after_ms, row.speedup) == (1.691, 1.6303, 1.0372)


def test_schema_2_round_trips_through_json(tmp_path: Path) -> None:
    report = read_report(EXAMPLES / "prune-v1.json")
    report.schema_version = SCHEMA_VERSION
    text = json.dumps(report.to_json())
    again = Report.from_json(json.loads(text))
    assert again == report and again.to_json()["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "newer secateurs"),
        (lambda d: d["settings"].update(colour="red"), "not a pruning report"),
        (lambda d: d["cost_after"].update(macs="many"), "not a pruning report"),
        (lambda d: d.pop("cost_before"), "not a pruning report"),
    ],
)
def test_what_is_not_a_report_is_refused(edit, message: str) -> None:
    data = read_report(EXAMPLES / "prune-v1.json").to_json()
    data["schema_version"] = SCHEMA_VERSION
    edit(data)
    with pytest.raises(SecateursError, match=message):
        Report.from_json(data, "edited")
