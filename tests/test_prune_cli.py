"""``secateurs prune`` end to end on a tiny trained model, and its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secateurs.cli.main import main
from secateurs.report import read_report
from secateurs.runs.train_run import run_training
from secateurs.train.config import TrainConfig


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("digits-run")
    config = TrainConfig(
        model="resnet20",
        data="digits",
        epochs=2,
        batch_size=64,
        padding=1,
        flip=False,
        lr=0.05,
        threads=1,
    )
    run_training(config, run_dir)
    return run_dir / "model"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow  # fine-tunes an epoch and times both models
def test_prune_writes_model_and_report(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "pruned"
    code, stdout, _ = _run(
        [
            "prune",
            str(trained),
            "--method",
            "taylor",
            "--target-macs",
            "0.5",
            "--data",
            "digits",
            "--finetune-epochs",
            "1",
            "--batch-size",
            "64",
            "--threads",
            "1",
            "--latency-repeats",
            "3",
            "-o",
            str(out),
            "--json",
        ],
        capsys,
    )
    assert code == 0
    report = read_report(out)
    assert abs(report.macs_kept / 0.5 - 1) <= 0.02
    assert report.cost_after.params < report.cost_before.params
    for stage in ("before", "oneshot", "after"):
        assert 0 <= report.top1(stage) <= 100
    assert set(report.latency) == {"eager", "onnxruntime"}
    assert all(set(rows) == {"1", "64"} for rows in report.latency.values())
    assert report.settings.training_epochs == 1
    assert json.loads(stdout) == report.to_json()  # --json prints the report
    assert (out / "report.md").read_text().startswith("# Pruning report: resnet20 with taylor")
    assert (out / "report.png").stat().st_size > 10_000
    # the saved pruned model evaluates to the reported accuracy
    code, stdout, _ = _run(["eval", str(out), "--data", "digits", "--json"], capsys)
    assert code == 0
    assert json.loads(stdout)["top1"] == pytest.approx(report.top1("after"), abs=1e-9)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "l1", "--target-macs", "0"], "between 0 and 1"),
        (["--method", "l1", "--target-macs", "1"], "between 0 and 1"),
        (["--method", "l1", "--target-macs", "1.5"], "between 0 and 1"),
        (["--method", "tailor", "--target-macs", "0.5"], "did you mean 'taylor'"),
        (["--method", "l1", "--target-macs", "0.001"], "above the channel floor"),
        (["--method", "l1", "--fold-bias"], "pass --data"),
        (["--method", "l1", "--layer-ratios", "layer1.0.conv1=0.5", "--steps", "2"], "one step"),
        (["--method", "pfp", "--method-param", "delta=0"], "delta must be in (0, 1)"),
        (["--method", "pfp", "--method-param", "sample_size=-5"], "sample_size must be"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, capsys, argv, message) -> None:
    out = tmp_path / "out"
    code, _, err = _run(
        ["prune", str(trained), *argv, "-o", str(out), "--latency-repeats", "2"], capsys
    )
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()  # nothing written before the input was found bad


def test_fold_bias_is_recorded_and_reloads(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "folded"
    argv = ["prune", str(trained), "--method", "l1", "--data", "digits", "--fold-bias"]
    code, _, _ = _run([*argv, "--threads", "1", "--latency-repeats", "0", "-o", str(out)], capsys)
    assert code == 0
    report = read_report(out)
    assert report.pruning.bias_fold is True
    (fold,) = json.loads((out / "manifest.json").read_text())["pruning"]["bias_fold"]["steps"]
    # ResNet-20's consumers are bias-free convolutions followed by BN, and the classifier
    assert fold["skipped"] == [] and "fc" in fold["folded"] and len(fold["folded"]) > 5
    code, stdout, _ = _run(["eval", str(out), "--data", "digits", "--json"], capsys)
    assert code == 0
    assert json.loads(stdout)["top1"] == pytest.approx(report.top1("after"), abs=1e-9)


def test_the_channel_floor_is_an_option_and_recorded(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "floored"
    argv = ["prune", str(trained), "--method", "l1", "--target-macs", "0.3", "--threads", "1"]
    argv += ["--min-fraction", "0.25", "--ends-min-fraction", "0.5", "--min-channels", "5"]
    assert _run([*argv, "--latency-repeats", "0", "-o", str(out)], capsys)[0] == 0
    floor = read_report(out).pruning.details["floor"]
    assert (floor["fraction"], floor["ends_fraction"], floor["min_channels"]) == (0.25, 0.5, 5)
    # 16 wide: max(5, 4) = 5; 32: 8; 64: 16; the stem: 8 of 16; the classifier input: 32 of 64
    assert floor["per_group"]["layer1.0.conv1"] == 5 and floor["per_group"]["conv1"] == 8
    assert floor["per_group"]["layer2.1.conv1"] == 8 and floor["per_group"]["layer3.1.conv1"] == 16
    assert floor["per_group"]["layer3.0.shortcut.0"] == 32
    channels = read_report(out).pruning.channels
    assert all(channels[root]["after"] >= kept for root, kept in floor["per_group"].items())
    code, _, err = _run([*argv[:4], "--min-fraction", "1", "-o", str(tmp_path / "x")], capsys)
    assert code == 2 and "--min-fraction" in err


def test_batchnorm_recalibration_is_applied_and_reported(
    trained: Path, tmp_path: Path, capsys
) -> None:
    from safetensors.torch import load_file

    # only layer3.0.conv1 loses channels: stage 1's BatchNorm keeps its shape, so its statistics
    # can be compared with the unpruned model's, with and without recalibration
    argv = ["prune", str(trained), "--method", "l1", "--data", "digits"]
    argv += ["--layer-ratios", "layer3.0.conv1=0.5", "--threads", "1", "--latency-repeats", "0"]
    out, plain = tmp_path / "recalibrated", tmp_path / "plain"
    assert _run([*argv, "--recalibrate-bn", "2", "-o", str(out)], capsys)[0] == 0
    assert _run([*argv, "-o", str(plain)], capsys)[0] == 0
    report = read_report(out)
    assert report.settings.bn_recalibration_batches == 2
    assert 0 <= report.top1("oneshot_uncalibrated") <= 100
    assert "re-estimated on 2 batches" in (out / "report.md").read_text()
    base = load_file(trained / "model.safetensors")
    key = "layer1.0.bn1.running_var"
    recalibrated = load_file(out / "oneshot" / "model.safetensors")[key]
    untouched = load_file(plain / "oneshot" / "model.safetensors")[key]
    assert recalibrated.shape == untouched.shape == base[key].shape
    assert untouched.equal(base[key])  # the control: pruning alone keeps the statistics
    assert (recalibrated - base[key]).abs().max() > 1e-3  # recalibration re-estimated them
    # every BatchNorm, not only that one, was reset and re-estimated on exactly the 2 batches
    counts = {
        name: int(value)
        for name, value in load_file(out / "oneshot" / "model.safetensors").items()
        if name.endswith("num_batches_tracked")
    }
    # ResNet-20 has 21 BatchNorms: the stem's, two in each of 9 blocks, two on shortcuts
    assert len(counts) == 21 and set(counts.values()) == {2}, counts
    code, _, err = _run(
        ["prune", str(trained), "--method", "l1", "--recalibrate-bn", "2", "-o", str(out / "x")],
        capsys,
    )
    assert code == 2 and "--recalibrate-bn" in err


@pytest.mark.slow  # two fine-tuning runs
def test_distillation_from_the_unpruned_model(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "distilled"
    argv = ["prune", str(trained), "--method", "l1", "--data", "digits", "--finetune-epochs", "1"]
    settings = ["--batch-size", "64", "--threads", "1", "--latency-repeats", "0"]
    code, _, _ = _run([*argv, *settings, "--distill", "0.7", "-o", str(out)], capsys)
    assert code == 0
    report = read_report(out)
    assert report.settings.distill_weight == 0.7 and report.settings.training_epochs == 1
    config = json.loads((out / "finetune" / "config.json").read_text())
    assert (config["teacher"], config["distill_weight"]) == ([str(trained)], 0.7)
    assert "distilled from the unpruned model (weight 0.7" in (out / "report.md").read_text()
    # the same fine-tuning without the teacher ends elsewhere
    plain = tmp_path / "plain"
    assert _run([*argv, *settings, "-o", str(plain)], capsys)[0] == 0
    assert json.loads((plain / "finetune" / "config.json").read_text())["teacher"] == []
    tuned = (out / "model.safetensors").read_bytes()
    assert tuned != (plain / "model.safetensors").read_bytes()
    for bad, message in ((["--distill", "1.5"], "in [0, 1]"), (["--distill", "0.5"], "--finetune")):
        code, _, err = _run(
            ["prune", str(trained), "--method", "l1", *bad, "-o", str(tmp_path / "x")], capsys
        )
        assert code == 2 and message in err


def test_existing_output_is_not_overwritten(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, _, err = _run(["prune", str(trained), "--method", "l1", "-o", str(out)], capsys)
    assert code == 2 and "not empty" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_model_directory_of_another_architecture(trained: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other"
    other.mkdir()
    manifest = json.loads((trained / "manifest.json").read_text())
    manifest["architecture"] = "resnet32"
    (other / "manifest.json").write_text(json.dumps(manifest))
    (other / "model.safetensors").write_bytes((trained / "model.safetensors").read_bytes())
    code, _, err = _run(["prune", str(other), "--method", "l1", "-o", str(tmp_path / "x")], capsys)
    assert code == 2 and "do not fit resnet32" in err
    assert not (tmp_path / "x").exists()


def test_methods_command_lists_baselines(capsys) -> None:
    code, out, _ = _run(["methods"], capsys)
    assert code == 0
    names = [
        line.split()[0] for line in out.splitlines() if line.startswith("  ") and line[2] != " "
    ]
    assert {"l1", "l2", "taylor", "bn_scale", "random", "pfp", "wsp", "spp"} <= set(names)
    assert "run: secateurs spp MODEL" in out


def test_layer_ratios_report_no_target(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "one-layer"
    argv = ["prune", str(trained), "--method", "l1", "--layer-ratios", "layer1.0.conv1=0.5"]
    code, _, err = _run([*argv, "--latency-repeats", "0", "-o", str(out)], capsys)
    assert code == 0, err
    report = read_report(out)
    assert report.pruning.target_ratio is None
    assert report.pruning.layer_ratios == {"layer1.0.conv1": 0.5}
    assert report.pruning.channels["layer1.0.conv1"] == {"before": 16, "after": 8}
    assert (
        "Target: per-layer ratios layer1.0.conv1=0.5; achieved macs ratio 0.9"
        in (out / "report.md").read_text()
    )


def test_job_data_is_read_at_the_image_size_the_model_was_trained_with(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from PIL import Image

    from secateurs.runs.data import load_run_data
    from secateurs.store import Manifest

    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (12, 12), (200, 10, 10)).save(tmp_path / split / name / "0.png")
    manifest = Manifest("resnet20", {}, ["a", "b"], [3, 8, 8], [0.5] * 3, [0.2] * 3, image_size=8)
    job = SimpleNamespace(
        data=str(tmp_path),
        image_size=None,
        train_subset=None,
        test_subset=None,
        seed=0,
        model="m",
    )
    data = load_run_data(job, manifest)
    assert data.train.input_size == data.test.input_size == (3, 8, 8)
