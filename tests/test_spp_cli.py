"""``secateurs spp`` end to end on a tiny trained model: SPP training, compaction, saving the
compacted model (compact convolutions included) and reloading it from JSON + safetensors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from secateurs.cli.main import main
from secateurs.pruning.compaction.compact_conv import CompactConv2d
from secateurs.report import read_report
from secateurs.runs.train_run import run_training
from secateurs.store import load_model
from secateurs.train.config import TrainConfig


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("digits-run")
    config = TrainConfig(
        model="resnet20", data="digits", epochs=2, batch_size=64, padding=1, flip=False, lr=0.05
    )
    run_training(replace_threads(config), run_dir)
    return run_dir / "model"


def replace_threads(config: TrainConfig) -> TrainConfig:
    config.threads = 1
    return config


def _spp(trained: Path, out: Path, *extra: str) -> int:
    argv = ["spp", str(trained), "--data", "digits", "-o", str(out), "--batch-size", "64"]
    argv += ["--threads", "1", "--interval", "1", "--A", "0.25", "--epochs", "3", *extra]
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _outputs(directory: Path) -> torch.Tensor:
    model, manifest = load_model(directory)
    images = torch.randn(4, *manifest.input_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(images)


@pytest.mark.slow  # 3 epochs of SPP training each
@pytest.mark.parametrize("granularity", ["column", "channel"])
def test_spp_prunes_compacts_saves_and_reloads(trained: Path, tmp_path: Path, granularity):
    out = tmp_path / granularity
    assert _spp(trained, out, "--granularity", granularity, "--latency-repeats", "0") == 0
    report = read_report(out)
    details = report.pruning.details
    assert details["spp"]["over"], "SPP should finish pruning within 3 epochs here"
    assert report.pruning.achieved_ratio <= 0.5 + 0.02
    assert report.cost_after.macs < report.cost_before.macs
    assert details["compacted_vs_masked_max_rel_diff"] <= 1e-4
    assert report.top1("after") == pytest.approx(report.top1("masked"), abs=0.2)
    assert report.settings.kind == "spp" and report.settings.training_epochs == 3
    # the saved model rebuilds from its manifest and computes what the masked model computes
    reloaded, manifest = load_model(out)
    compact = [m for m in reloaded.modules() if isinstance(m, CompactConv2d)]
    if granularity == "column":
        assert compact and manifest.pruning.compact_columns.layers
        assert {c["choice"] for c in details["compact_layers"]} == {"compact-untimed"}
    else:
        assert not compact and report.cost_after.params < report.cost_before.params
    difference = (_outputs(out) - _outputs(out / "masked")).abs().max() / _outputs(out).abs().max()
    assert float(difference) <= 1e-4
    assert (out / "report.md").read_text().startswith("# Pruning report")


def test_oneshot_baseline_prunes_before_the_first_iteration(trained: Path, tmp_path: Path):
    out = tmp_path / "oneshot"
    assert _spp(trained, out, "--oneshot", "--epochs", "1", "--latency-repeats", "2") == 0
    report = read_report(out)
    details = report.pruning.details
    assert report.pruning.method == "spp-oneshot"
    assert details["spp"]["finished_step"] == 0 and details["spp"]["updates"] == 0
    assert report.pruning.achieved_ratio <= 0.5 + 0.02
    # timed: every column-sparse layer chose the faster form, and says so
    layers = details["compact_layers"]
    assert layers, "the one-shot column mask leaves column-sparse layers to choose for"
    for layer in layers:
        assert set(layer["speedups"]) == {"1", "64"}
        mean = math.prod(layer["speedups"].values()) ** (1 / 2)
        assert layer["choice"] == ("compact" if mean > 1 else "dense"), layer


def test_resume_recompacts_without_retraining(trained: Path, tmp_path: Path):
    out = tmp_path / "resumed"
    assert _spp(trained, out, "--epochs", "1", "--latency-repeats", "0") == 0
    first = read_report(out)
    metrics = (out / "train" / "metrics.jsonl").read_text()
    assert _spp(trained, out, "--epochs", "1", "--latency-repeats", "0", "--resume") == 0
    second = read_report(out)
    assert (out / "train" / "metrics.jsonl").read_text() == metrics  # no epoch trained again
    assert second.cost_after == first.cost_after
    assert second.top1("after") == first.top1("after")


def test_spp_bad_input(trained: Path, tmp_path: Path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _spp(trained, out) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert _spp(trained, tmp_path / "x", "--granularity", "rows") == 2
    assert _spp(trained, tmp_path / "y", "--target-macs", "1.5") == 2
    assert _spp(trained, tmp_path / "z", "--interval", "0") == 2
    assert "interval" in capsys.readouterr().err


def test_engine_refuses_a_model_with_compact_convolutions() -> None:
    from secateurs.errors import SecateursError
    from secateurs.models import create_model
    from secateurs.pruning import ChannelGraph

    model = create_model("resnet20", num_classes=4, in_channels=3)
    keep = torch.ones(16, 3, 3, dtype=torch.bool)
    keep[:4] = False
    model.layer1[0].conv2 = CompactConv2d(model.layer1[0].conv2, keep)
    with pytest.raises(SecateursError, match=r"layer1\.0\.conv2 is a compact column convolution"):
        ChannelGraph(model, (3, 16, 16))


def test_resume_with_another_granularity_is_one_line(trained: Path, tmp_path: Path, capsys):
    out = tmp_path / "columns"
    argv = ["--epochs", "1", "--latency-repeats", "0"]
    assert _spp(trained, out, "--granularity", "column", *argv) == 0
    capsys.readouterr()
    assert _spp(trained, out, "--granularity", "input_channel", *argv, "--resume") == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "secateurs: error: the SPP run was started with other settings: granularity 'column' "
        "(now 'input_channel'); resume it with the same ones"
    ]
    resumed = [*argv, "--target-macs", "0.3", "--resume"]
    assert _spp(trained, out, "--granularity", "column", *resumed) == 2
    assert "target_macs 0.5 (now 0.3)" in capsys.readouterr().err


def test_spp_refuses_a_learning_rate_that_is_not_positive(trained: Path, tmp_path: Path, capsys):
    assert _spp(trained, tmp_path / "lr", "--lr", "0", "--latency-repeats", "0") == 2
    assert "--lr must be positive" in capsys.readouterr().err


def test_a_refused_run_leaves_nothing_that_blocks_the_corrected_one(
    trained: Path, tmp_path: Path, capsys
):
    out = tmp_path / "retry"
    assert _spp(trained, out, "--target-macs", "0.01", "--latency-repeats", "0") == 2
    assert "secateurs: error:" in capsys.readouterr().err
    assert not out.exists()
    assert _spp(trained, out, "--epochs", "1", "--latency-repeats", "0") == 0
