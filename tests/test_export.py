"""``secateurs export``: BatchNorm folded, dynamic batch, onnx's checker, outputs checked against
PyTorch before anything is written, an int8 copy on request."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ci_guard import require
from secateurs.cli.main import main
from secateurs.runs.train_run import run_training
from secateurs.store import load_model
from secateurs.train.config import TrainConfig

onnx = require("onnx")
onnxruntime = require("onnxruntime")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits-export")
    config = TrainConfig(data="digits", epochs=1, batch_size=64, padding=1, flip=False)
    config.threads, config.train_subset = 1, 512
    run_training(config, out)
    return out / "model"


def _export(*argv: str | Path) -> int:
    try:
        return main(["export", *map(str, argv)])
    except SystemExit as exit_:
        return int(exit_.code or 0)


def test_export_folds_batchnorm_and_matches_pytorch_at_any_batch(
    trained: Path, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "model.onnx"
    assert _export(trained, "-o", path, "--data", "digits", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    # ResNet-20's BatchNorms: the stem's, two in each of 9 blocks, two on strided shortcuts
    assert result["folded_batchnorms"] == 1 + 9 * 2 + 2
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert not [node for node in graph.graph.node if node.op_type == "BatchNormalization"]
    model, manifest = load_model(trained)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3, 17):  # the batch dimension is dynamic
        images = torch.randn(batch, *manifest.input_size)
        with torch.no_grad():
            expected = model(images).numpy()
        got = session.run(None, {"images": images.numpy()})[0]
        assert got.shape == (batch, 10)
        assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-4
    assert result["max_rel_diff"] <= 1e-4 and result["check_images"] == 64


def test_a_failed_check_writes_nothing(trained: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from secateurs.measurement import export

    monkeypatch.setattr(export, "max_relative_difference", lambda *args: 0.5)
    path = tmp_path / "model.onnx"
    assert _export(trained, "-o", path, "--data", "digits") == 2
    assert "differs from PyTorch's by 5.00e-01" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_int8_copy_is_quantised_scored_and_timed(trained: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "model.onnx"
    argv = ["-o", path, "--data", "digits", "--int8", "--calibration-images", "64"]
    assert _export(trained, *argv, "--repeats", "3", "--threads", "1", "--json") == 0
    int8 = json.loads(capsys.readouterr().out)["int8"]
    graph = onnx.load(int8["path"])
    assert any(node.op_type == "QuantizeLinear" for node in graph.graph.node)
    assert 0 <= int8["top1_int8"] <= 100 and 0 <= int8["top1_fp32"] <= 100
    assert abs(int8["top1_int8"] - int8["top1_fp32"]) < 10  # quantisation keeps the model
    row = int8["latency"]["64"]
    assert row["speedup"] == pytest.approx(row["fp32_ms"] / row["int8_ms"], rel=1e-2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-o", "model.pt"], "takes a .onnx file"),
        (["-o", "model.onnx", "--int8"], "pass --data"),
    ],
)
def test_bad_input_is_one_line(trained, tmp_path, capsys, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    assert _export(trained, *argv) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_refused_unless_forced(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(b"mine")
    assert _export(trained, "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"secateurs: error: {out} exists; choose another -o (or --force)"
    assert out.read_bytes() == b"mine"
    assert _export(trained, "-o", str(out), "--force") == 0
    assert out.read_bytes()[:4] != b"mine"
