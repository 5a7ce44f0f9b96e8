"""``secateurs campfire`` end to end on the digits (each granularity trains, compacts, reports and
reloads; a resumed run equals an uninterrupted one; bad input is one line), and ``secateurs
robustness``: FGSM lowers a trained model's accuracy, PGD lowers it further, deterministically."""

from __future__ import annotations

import json
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
    return train_digits(tmp_path_factory.mktemp("digits-campfire"), epochs=2, label_smoothing=0.0)


def _run(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _campfire(trained: Path, out: Path, *extra: str) -> int:
    return _run(
        "campfire", str(trained), "--data", "digits", "-o", str(out), "--batch-size", "64",
        "--threads", "1", "--latency-repeats", "0", "--interval", "2", "--train-subset", "640",
        *extra,
    )  # fmt: skip


def _same_outputs(out: Path) -> float:
    model, manifest = load_model(out)
    masked, _ = load_model(out / "masked")
    images = torch.randn(4, *manifest.input_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = masked(images)
        return float((model(images) - expected).abs().max() / expected.abs().max())


def test_window_sparsity_trains_freezes_packs_and_reloads(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "window"
    assert _campfire(trained, out, "--epochs", "2", "--sparsity", "0.7") == 0
    report = read_report(out)
    campfire = report.pruning.details["campfire"]
    assert campfire["frozen"] and campfire["schedule_steps"]["end"] == campfire["step"] // 2
    # 3x3 kernels keep 3 or 2 of 9: sparsity 6/9 or 7/9 per layer, 0.7 of the weights overall
    assert set(campfire["layer_sparsity"].values()) <= {0.66667, 0.77778}
    masked, _ = load_model(out / "masked")
    conv = masked.get_submodule("layer2.1.conv1").weight
    assert set((conv != 0).reshape(-1, 9).sum(1).tolist()) <= {2, 3}
    assert (masked.get_submodule("conv1").weight != 0).all()  # the first layer is exempt
    files = report.pruning.details["files"]
    assert files["file"] == "window.safetensors" and files["bytes"] < files["dense_bytes"] / 2
    assert all(layer["choice"] == "dense" for layer in report.pruning.details["layers"])
    assert report.cost_after.macs / report.cost_before.macs == pytest.approx(0.3, abs=0.03)
    executed = report.pruning.details["executed_macs"]
    assert executed == report.cost_before.macs  # dense layers with zeros
    text = (out / "report.md").read_text()
    assert f"saved executes {executed / 1e6:.2f} M" in text
    assert "Target: weight sparsity 0.7 per layer;" in text
    assert _same_outputs(out) == 0.0


def test_kernel_sparsity_runs_as_gathered_convolutions(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "kernel"
    assert _campfire(trained, out, "--epochs", "2", "--granularity", "kernel") == 0
    report = read_report(out)
    assert report.pruning.target_ratio == 0.5
    assert report.cost_after.macs / report.cost_before.macs == pytest.approx(0.5, abs=0.02)
    model, _ = load_model(out)
    from secateurs.pruning.compaction.diverse_conv import DiverseGroupConv2d

    assert any(isinstance(m, DiverseGroupConv2d) for m in model.modules())
    assert _same_outputs(out) <= 1e-4


def test_filter_level_removes_channels(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "filter"
    assert _campfire(trained, out, "--epochs", "2", "--granularity", "filter") == 0
    report = read_report(out)
    assert report.macs_kept == pytest.approx(0.5, abs=0.02)
    model, _ = load_model(out)
    # the same share of every group: about sqrt(0.5) of 16 and of 64 channels for half the MACs
    assert model.get_submodule("layer1.0.conv1").out_channels == 11
    assert model.get_submodule("layer3.2.conv1").out_channels == 45
    assert _same_outputs(out) <= 1e-4


def test_a_resumed_run_equals_an_uninterrupted_one(trained: Path, tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    settings = ("--epochs", "3", "--sparsity", "0.6", "--granularity", "kernel")
    assert _campfire(trained, whole, *settings) == 0
    with cut_after_first_epoch():
        assert _campfire(trained, parts, *settings) == 130
    assert _campfire(trained, parts, *settings, "--resume") == 0
    first, _ = load_model(whole / "masked")
    second, _ = load_model(parts / "masked")
    assert weights_digest(first) == weights_digest(second)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--granularity", "filter+window"], "invalid choice"),
        (["--prune-end", "5", "--epochs", "2"], "start before it ends"),
        (["--layer-sparsity", "nope=0.5"], "not a layer Campfire prunes"),
        (["--target-macs", "0.01"], "Campfire reaches"),
    ],
)
def test_bad_input_is_one_line(trained, tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "bad"
    assert _campfire(trained, out, *extra) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()


def test_fgsm_lowers_accuracy_and_pgd_lowers_it_further(trained, tmp_path, capsys) -> None:
    argv = ["robustness", str(trained), "--data", "digits", "--eps", "16"]
    assert _run(*argv, "-o", str(tmp_path / "a.json")) == 0
    result = json.loads((tmp_path / "a.json").read_text())
    assert result["n"] == 360
    assert result["clean"] > 80
    assert result["fgsm@16"] < result["clean"] - 20
    assert result["pgd@16"] < result["fgsm@16"] - 5
    assert _run(*argv, "-o", str(tmp_path / "b.json")) == 0  # seeded: the same again
    assert json.loads((tmp_path / "b.json").read_text()) == result


def test_taylor_gradual_runs_from_the_command_line(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "taylor-gradual"
    argv = ["taylor-gradual", str(trained), "--data", "digits", "-o", str(out), "--threads", "1"]
    argv += ["--batch-size", "64", "--latency-repeats", "0", "--epochs", "2", "--interval", "1"]
    argv += ["--train-subset", "640"]
    assert _run(*argv, "--per-step", "16", "--target-macs", "0.7") == 0
    report = read_report(out)
    assert report.pruning.method == "taylor-gradual"
    # 16 channels a step stop at the first plan under 0.7 of the MACs
    assert 0.6 <= report.macs_kept <= 0.7
    assert _same_outputs(out) <= 1e-4


def test_the_python_api_trains_sparse_saves_and_reloads(trained: Path, tmp_path: Path) -> None:
    import secateurs

    model, manifest = secateurs.load(trained)
    data = secateurs.load_data("digits", manifest=manifest, train_subset=640)
    images = torch.randn(2, *manifest.input_size)
    pruned = secateurs.prune_while_training(
        model, data, method="campfire", example_input=images, epochs=1, granularity="kernel",
        sparsity=0.5, interval=3, batch_size=64, threads=1,
    )  # fmt: skip
    # every prunable conv reads half its input channels per filter: MACs of the non-zeros
    assert 0.5 < pruned.achieved < 0.6
    secateurs.save(pruned, tmp_path / "saved", manifest=manifest)
    back, _ = secateurs.load(tmp_path / "saved")
    with torch.no_grad():
        assert torch.allclose(back(images), pruned.model.eval()(images), atol=1e-5)
    with pytest.raises(secateurs.SecateursError, match="training-time methods are"):
        secateurs.prune_while_training(model, data, method="l1", example_input=images, epochs=1)
