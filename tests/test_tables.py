"""benchmarks/tables.py: rows grouped by method and target, mean +- sample standard deviation
over seeds worked out by hand, read from report.json files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from secateurs.report import Accuracy, Cost, PruningRecord, Report, RunSettings

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "tables.py"


def tables():
    spec = importlib.util.spec_from_file_location("tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(
    method: str, seed: int, after: float, oneshot: float, params: int, before: float = 87.5
) -> Report:
    return Report(
        settings=RunSettings(kind="prune", model="resnet20", model_dir="m", seed=seed),
        pruning=PruningRecord(method=method, target_ratio=0.5, strategy="global"),
        cost_before=Cost(1000, 2000),
        cost_after=Cost(500, params),
        accuracy={
            "before": Accuracy(top1=before),
            "after": Accuracy(top1=after),
            "oneshot": Accuracy(top1=oneshot),
        },
    )


def write(runs: list[Report], tmp_path: Path) -> list[str]:
    paths = []
    for index, run in enumerate(runs):
        directory = tmp_path / f"run{index}"
        directory.mkdir()
        (directory / "report.json").write_text(json.dumps(run.to_json()))
        paths.append(str(directory))
    return paths


def test_seeds_of_one_method_are_one_row_with_their_spread(tmp_path: Path, capsys) -> None:
    """random, seeds 0-2: after FT 84.0, 85.0, 86.5 -> mean 85.1667, sample sd
    sqrt(((-1.1667)^2 + (-0.1667)^2 + 1.3333^2) / 2) = sqrt(3.1667 / 2) = 1.2583; params kept
    1000, 1100, 1200 of 2000 -> 0.550 +- 0.050; one-shot 10, 12, 11 -> 11.00 +- 1.00. l1 (one
    seed, 86.0) ranks first."""
    runs = [
        report("random", 0, 84.0, 10.0, 1000),
        report("random", 1, 85.0, 12.0, 1100),
        report("random", 2, 86.5, 11.0, 1200),
        report("l1", 0, 86.0, 16.0, 1160),
    ]
    (tmp_path / "running").mkdir()  # no report.json yet: left out, said on stderr
    assert tables().main([*write(runs, tmp_path), str(tmp_path / "running")]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == f"left out, no report.json yet: {tmp_path / 'running'}"
    lines = captured.out.splitlines()
    assert lines[2] == "| l1, global | 0.5 | 0 | 0.500 | 0.580 | 16.00 | 86.00 |"
    random = (
        "| random, global | 0.5 | 0, 1, 2 | 0.500 ± 0.000 | 0.550 ± 0.050 | 11.00 ± 1.00 "
        "| 85.17 ± 1.26 |"
    )
    assert lines[3] == random
    assert len(lines) == 4


def test_change_from_unpruned_is_after_minus_before_per_seed(tmp_path: Path, capsys) -> None:
    """pfp seeds 0-1: after 86.0 and 85.0 from unpruned 87.5 and 87.0 -> changes -1.5 and -2.0:
    mean -1.75, sample sd sqrt(2 * 0.25^2 / 1) = 0.3536."""
    runs = [report("pfp", 0, 86.0, 10.0, 1000, 87.5), report("pfp", 1, 85.0, 10.0, 1000, 87.0)]
    for run in runs:
        run.pruning.method_params["budget"] = "eps"  # PFP's own budget, not the strategy
    assert tables().main(["--change", *write(runs, tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("| top-1 after FT | change from unpruned |")
    assert lines[2].startswith("| pfp, eps budget | 0.5 | 0, 1 |")
    assert lines[2].endswith("| 85.50 ± 0.71 | -1.75 ± 0.35 |")


def test_relabelled_runs_are_their_own_row(tmp_path: Path, capsys) -> None:
    """Two pfp runs whose reports look alike, one under a relabelled path: two rows."""
    runs = [report("pfp", 0, 86.0, 10.0, 1000), report("pfp", 0, 84.0, 10.0, 1000)]
    first, second = write(runs, tmp_path)
    assert tables().main(["--relabel", f"{second}=pfp, old ranking", first, second]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| pfp, global", "| pfp, old ranking"]
