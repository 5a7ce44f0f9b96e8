"""``secateurs compare`` and :mod:`secateurs.comparison`: runs side by side, fairly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secateurs.cli.main import main
from secateurs.comparison import _curves, load_runs, markdown_table, unequal_terms
from secateurs.errors import SecateursError


def write_run(
    directory: Path,
    method: str,
    macs_after: int,
    params_after: int,
    top1_oneshot: float,
    top1_after: float,
    finetune_epochs: int = 10,
    latency: dict | None = None,
    **extra: object,
) -> Path:
    directory.mkdir(parents=True)
    report = {
        "model": "resnet20",
        "method": method,
        "macs_before": 40_000_000,
        "macs_after": macs_after,
        "params_before": 270_000,
        "params_after": params_after,
        "top1_before": 87.45,
        "top1_oneshot": top1_oneshot,
        "top1_after": top1_after,
        "finetune_epochs": finetune_epochs,
        "test_images": 10_000,
        "latency": latency or {},
        **extra,
    }
    (directory / "report.json").write_text(json.dumps(report))
    return directory


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    speed = {"1": {"speedup": 1.3}, "64": {"speedup": 1.95}}
    return [
        write_run(tmp_path / "a" / "l1", "l1", 20_000_000, 135_000, 16.28, 85.94, latency=speed),
        write_run(tmp_path / "b" / "l1", "l1", 28_000_000, 189_000, 52.67, 86.5),
        write_run(tmp_path / "random-0", "random", 19_920_000, 129_330, 12.15, 85.06),
    ]


def test_runs_are_summarised_as_ratios_and_named_uniquely(runs: list[Path]) -> None:
    summaries = load_runs([runs[0], runs[1] / "report.json", runs[2]])
    assert [run.name for run in summaries] == ["a/l1", "b/l1", "random-0"]
    assert summaries[0].macs_kept == pytest.approx(0.5)
    assert summaries[2].params_kept == pytest.approx(0.479)
    assert summaries[1].top1 == 86.5
    assert summaries[0].speedup == {"1": 1.3, "64": 1.95}


def test_markdown_table_has_one_row_per_run_and_every_timed_batch(runs: list[Path]) -> None:
    table = markdown_table(load_runs(runs)).splitlines()
    assert table[0].endswith("| speed-up b1 | speed-up b64 |")
    assert table[2] == "| a/l1 | l1 | 0.500 | 0.500 | 16.28 | 85.94 | 1.30x | 1.95x |"
    assert table[4] == "| random-0 | random | 0.498 | 0.479 | 12.15 | 85.06 | - | - |"
    assert len(table) == 5


def test_runs_on_equal_terms_give_no_warning(runs: list[Path]) -> None:
    assert unequal_terms(load_runs(runs)) == []


def test_a_run_without_fine_tuning_is_flagged_and_has_no_after(
    runs: list[Path], tmp_path: Path
) -> None:
    oneshot = write_run(tmp_path / "oneshot", "taylor", 20_000_000, 180_000, 28.28, 28.28, 0)
    summaries = load_runs([*runs, oneshot])
    assert summaries[-1].top1_after is None
    assert summaries[-1].top1 == 28.28
    assert unequal_terms(summaries) == [
        "runs differ in fine-tuning epochs: 10 (a/l1, b/l1, random-0); 0 (oneshot)"
    ]


def test_bad_runs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SecateursError, match="no such report"):
        load_runs([tmp_path / "missing"])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "report.json").write_text("{not json")
    with pytest.raises(SecateursError, match="not valid JSON"):
        load_runs([tmp_path / "broken"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "report.json").write_text('{"model": "resnet20"}')
    with pytest.raises(SecateursError, match="not a pruning report"):
        load_runs([tmp_path / "other"])
    edited = write_run(tmp_path / "edited", "l1", 20_000_000, 1, 10.0, 85.0)
    report = json.loads((edited / "report.json").read_text())
    report["latency"] = {"1": {"speedup": "fast"}}  # a hand-edited report
    (edited / "report.json").write_text(json.dumps(report))
    with pytest.raises(SecateursError, match="not a pruning report"):
        load_runs([edited])
    (edited / "report.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(SecateursError, match="not a text"):
        load_runs([edited])


def test_compare_command_prints_json_and_writes_the_plot(
    runs: list[Path], tmp_path: Path, capsys
) -> None:
    plot = tmp_path / "compare.png"
    assert main(["compare", *map(str, runs), "--json", "--plot", str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [run["top1_after"] for run in result["runs"]] == [85.94, 86.5, 85.06]
    assert result["unequal_terms"] == []
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_command_of_a_missing_run_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["compare", str(tmp_path / "nothing")]) == 2
    assert "no such report" in capsys.readouterr().err


def test_compare_command_with_an_unwritable_plot_is_one_line(
    runs: list[Path], tmp_path: Path, capsys
) -> None:
    plot = tmp_path / "missing" / "compare.png"
    assert main(["compare", *map(str, runs), "--plot", str(plot)]) == 2
    assert "cannot write the plot" in capsys.readouterr().err
    assert not plot.exists()


def test_series_names_the_non_default_settings_and_curves_average_seeds(tmp_path: Path) -> None:
    weights = {"seed": 3, "saliency": "weights", "percentile": None}
    runs = load_runs(
        [
            write_run(
                tmp_path / "w",
                "wsp",
                20_000_000,
                150_000,
                10.7,
                86.14,
                strategy="uniform",
                method_params=weights,
            ),
            write_run(
                tmp_path / "r0",
                "random",
                20_000_000,
                130_000,
                12.0,
                85.0,
                method_params={"seed": 0},
            ),
            write_run(
                tmp_path / "r1",
                "random",
                20_000_000,
                140_000,
                10.0,
                84.0,
                method_params={"seed": 1},
            ),
            write_run(tmp_path / "r7", "random", 28_000_000, 190_000, 17.0, 86.0),
            write_run(tmp_path / "kd", "random", 20_000_000, 1, 10.0, 86.0, distill_weight=0.7),
            write_run(tmp_path / "k0", "random", 20_000_000, 1, 10.0, 10.0, 0, distill_weight=0.7),
        ]
    )
    # distillation only shapes fine-tuning: a run without any is not a distilled run
    assert [run.series for run in runs] == ["wsp uniform saliency=weights"] + ["random"] * 3 + [
        "random distill=0.7",
        "random",
    ]
    assert markdown_table(runs).splitlines()[2].split(" | ")[1] == "wsp uniform saliency=weights"
    curves = _curves(runs[:4], "macs_kept")
    assert list(curves) == ["random"]  # the wsp series has one target only
    assert curves["random"] == (pytest.approx([0.5, 0.7]), pytest.approx([84.5, 86.0]))


def test_series_tell_apart_runs_pruned_or_repaired_differently(tmp_path: Path) -> None:
    settings = [
        {},
        {"steps": 1, "round_to": 1, "normalize": None, "bias_fold": False},  # the defaults
        {"steps": 3},
        {"round_to": 16},
        {"normalize": "max"},
        {"bias_fold": True},
        {"bn_recalibration_batches": 8},
        {"layer_ratios": {"layer1.0.conv1": 0.5}},
    ]
    runs = load_runs(
        [
            write_run(tmp_path / f"r{i}", "l1", 20_000_000, 1, 10.0, 85.0, **extra)
            for i, extra in enumerate(settings)
        ]
    )
    assert [run.series for run in runs] == [
        "l1",
        "l1",
        "l1 steps=3",
        "l1 round-to=16",
        "l1 normalize=max",
        "l1 fold-bias",
        "l1 recalibrate-bn=8",
        "l1 layer-ratios",
    ]
