"""Export on every registered model: BatchNorm folding is exact in PyTorch, and the written ONNX
graph gives PyTorch's outputs in onnxruntime (the check ``write_checked`` makes before writing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ci_guard import require
from pruning_helpers import randomise_batchnorm
from secateurs.measurement.export import fold_batchnorm, write_checked
from secateurs.models import create_model, list_models

onnx = require("onnx")
onnxruntime = require("onnxruntime")
HEAVY = {"vgg16_bn", "resnet110"}  # seconds each to trace, export and run
MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()]


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("name", MODELS)
def test_every_registered_model_folds_exactly_and_exports_equal(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = randomise_batchnorm(create_model(name, num_classes=10)).eval()
    images = torch.randn(4, 3, 32, 32)
    folded, count = fold_batchnorm(model)
    assert count == _batchnorms(model) > 0 and _batchnorms(folded) == 0
    with torch.no_grad():
        expected, got = model(images), folded(images)
    assert float((got - expected).abs().max() / expected.abs().max()) <= 1e-5
    export = write_checked(model, (3, 32, 32), images, tmp_path / "model.onnx")
    assert export.max_rel_diff <= 1e-4 and export.folded_batchnorms == count
    graph = onnx.load(str(export.path))
    assert not [n for n in graph.graph.node if n.op_type == "BatchNormalization"]
    session = onnxruntime.InferenceSession(str(export.path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"images": images[:3].numpy()})[0]  # the batch is dynamic
    assert outputs.shape == (3, 10)
    assert abs(outputs - expected[:3].numpy()).max() / expected.abs().max() <= 1e-4
