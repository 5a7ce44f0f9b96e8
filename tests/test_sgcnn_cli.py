"""``secateurs sgcnn`` end to end on the digits: it trains, groups, compacts, reports and
reloads; a resumed run equals an uninterrupted one; bad input is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from digits_model import train_digits
from interrupt import cut_after_first_epoch
from secateurs.cli.main import main
from secateurs.report import read_report
from secateurs.store import load_model
from secateurs.train.trainer import weights_digest


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_digits(tmp_path_factory.mktemp("digits-sgcnn"), epochs=2, label_smoothing=0.0)


def _sgcnn(trained: Path, out: Path, *extra: str) -> int:
    argv = ["sgcnn", str(trained), "--data", "digits", "-o", str(out), "--batch-size", "64"]
    argv += ["--threads", "1", "--groups", "4", "--latency-repeats", "0", *extra]
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def test_sgcnn_trains_groups_compacts_and_reloads(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _sgcnn(trained, out, "--epochs", "4", "--scheme", "LG", "--step", "0.25") == 0
    report = read_report(out)
    details = report.pruning.details
    # 0.5 of the MACs: the stages climb by 0.25 to the sparsity the target needs, then stop
    stages = details["sgcnn"]["stages"]
    assert stages[:-1] == [0.25, 0.5] and stages[-1] > 0.5 and details["sgcnn"]["applied"] == 3
    assert details["sgcnn"]["stage_epochs"] == [0, 1, 2]
    assert abs(details["connection_macs"] / report.cost_before.macs - 0.5) <= 0.02
    assert details["compacted_vs_masked_max_rel_diff"] <= 1e-4
    unread = details["unread_channels"]  # untimed: whatever no group reads is removed
    assert unread["policy"] == "if-faster" and unread["removed"] is (unread["channels"] > 0)
    assert report.top1("after") == pytest.approx(report.top1("masked"), abs=0.2)
    assert {layer["choice"] for layer in details["layers"]} <= {
        "grouped-untimed",
        "per_group-untimed",
    }
    names = [layer["name"] for layer in details["layers"]]
    assert names == list(details["sgcnn"]["layers"]) and "layer1.0.conv1" in names
    model, manifest = load_model(out)
    masked, _ = load_model(out / "masked")
    images = torch.randn(4, *manifest.input_size)
    with torch.no_grad():
        difference = (model(images) - masked(images)).abs().max() / masked(images).abs().max()
    assert float(difference) <= 1e-4
    assert report.settings.kind == "sgcnn" and report.settings.training_epochs == 4


def test_a_resumed_run_equals_an_uninterrupted_one(trained: Path, tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    settings = ("--scheme", "L", "--step", "0.25")
    assert _sgcnn(trained, whole, "--epochs", "3", *settings) == 0
    # the same run stopped after its first epoch: a checkpoint of epoch 1, then --resume
    from secateurs.train.checkpoint import load_checkpoint

    stop_after_one_epoch(trained, parts, settings)
    state = load_checkpoint(parts / "train" / "checkpoint.pt")
    assert state["epoch"] == 1
    assert _sgcnn(trained, parts, "--epochs", "3", *settings, "--resume") == 0
    lines = (parts / "train" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3  # epochs 2 and 3 trained after the resume, epoch 1 not again
    first, _ = load_model(whole / "masked")
    second, _ = load_model(parts / "masked")
    assert weights_digest(first) == weights_digest(second)


def stop_after_one_epoch(trained: Path, out: Path, settings: tuple[str, ...]) -> None:
    """Run the first epoch of a 3-epoch run and stop as a crash would, after its checkpoint."""
    with cut_after_first_epoch():
        assert _sgcnn(trained, out, "--epochs", "3", *settings) == 130


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--groups", "65"], "exceed every layer's filter count"),
        (["--target-macs", "0.02"], "SG-CNN reaches"),
        (["--scheme", "LG", "--epochs", "3"], "global fine-tuning"),
    ],
)
def test_bad_input_is_one_line(trained, tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "bad"
    assert _sgcnn(trained, out, *extra) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()


def test_balanced_groups_run_end_to_end(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "balanced"
    argv = ["--epochs", "2", "--scheme", "G", "--step", "0.3", "--balanced"]
    assert _sgcnn(trained, out, *argv) == 0
    report = read_report(out)
    assert report.pruning.method_params["balanced"] is True
    assert report.pruning.details["compacted_vs_masked_max_rel_diff"] <= 1e-4
    model, _ = load_model(out)
    from secateurs.pruning.compaction.diverse_conv import DiverseGroupConv2d

    diverse = [m for m in model.modules() if isinstance(m, DiverseGroupConv2d)]
    assert diverse  # untimed: every grouped layer is diverse
    for module in diverse:  # equal input sets: no channel padding
        inputs = {len(group[1]) for group in module.spec.groups}
        assert len(inputs) == 1
