"""Every timing table shows milliseconds and speed-ups from one measurement, states where and how
it was timed, and puts onnxruntime beside eager."""

from __future__ import annotations

import re

from rich.console import Console

from secateurs.demo import demo_table
from secateurs.report import Accuracy, Cost, Latency, PruningRecord, Report, RunSettings, markdown


def _report(method: str, eager: tuple[float, float], onnx: tuple[float, float]) -> Report:
    # two runs of the same dense model, timed on a busy machine: their "before" differ
    return Report(
        settings=RunSettings("prune", "resnet20", "m", latency_threads=2, latency_repeats=30),
        pruning=PruningRecord(method, target_ratio=0.5),
        cost_before=Cost(40_000_000, 270_000),
        cost_after=Cost(20_000_000, 140_000),
        accuracy={"before": Accuracy(90.0), "after": Accuracy(88.0)},
        latency={
            "eager": {
                "1": Latency.from_medians(7.0, 5.0, 2.0),
                "64": Latency.from_medians(*eager, 2.0),
            },
            "onnxruntime": {
                "1": Latency.from_medians(1.4, 1.0, 2.0),
                "64": Latency.from_medians(*onnx, 2.0),
            },
        },
    )


def test_report_md_states_the_timing_and_each_row_agrees_with_its_speed_up() -> None:
    text = markdown(_report("l1", (10.0, 8.7), (36.0, 18.0)))
    assert "Timed in eager and onnxruntime at batch 1 and 64, 2 threads, median of 30" in text
    header = next(line for line in text.splitlines() if line.startswith("| batch |"))
    assert header.index("eager speed-up") < header.index("onnxruntime before")
    rows = {
        line.split("|")[1].strip(): line
        for line in text.splitlines()
        if line.startswith(("| 1 |", "| 64 |"))
    }
    assert set(rows) == {"1", "64"}
    cells = [cell.strip() for cell in rows["64"].strip("|").split("|")]
    # batch, then per backend: before, after, speed-up, realisation
    assert cells[1:4] == ["10.000", "8.700", "1.15x"]
    assert cells[5:8] == ["36.000", "18.000", "2.00x"]
    for row in rows.values():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        for start in (1, 5):
            before, after, speedup = cells[start : start + 3]
            assert (
                float(before) / float(after) == float(speedup[:-1])
                or abs(float(before) / float(after) - float(speedup[:-1])) < 0.006
            )


def test_the_demo_shows_each_runs_own_before_and_after_beside_its_speed_up() -> None:
    reports = [
        _report("l1", (20.0, 10.0), (36.0, 18.0)),
        _report("taylor", (10.0, 8.7), (30.0, 20.0)),
    ]
    console = Console(record=True, width=250)
    console.print(demo_table(reports))
    text = console.export_text()
    taylor = next(line for line in text.splitlines() if "taylor" in line)
    found = re.findall(r"([\d.]+) -> ([\d.]+)\s*│\s*([\d.]+)x", taylor)
    assert found == [("10.00", "8.70", "1.15"), ("30.00", "20.00", "1.50")]
    for before, after, speedup in found:
        assert abs(float(before) / float(after) - float(speedup)) < 0.006
    assert "batch 64 (and 1), 2 threads" in text
