"""Deployment path: a (pruned) model exports to ONNX and runs in onnxruntime to the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ci_guard import require
from secateurs.measurement.latency import LatencySettings
from secateurs.models import create_model
from secateurs.pruning import Target
from secateurs.pruning.methods import create_method
from secateurs.pruning.prune import PruneSettings, prune_model

require("onnx")
require("onnxruntime")
from secateurs.measurement.onnx_runtime import compare_onnx, export_onnx, onnx_session  # noqa: E402

INPUT = (3, 32, 32)


def test_pruned_model_runs_in_onnxruntime_with_the_same_outputs() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    prune_model(model, INPUT, create_method("l1"), PruneSettings(Target("macs", 0.5)))
    session = onnx_session(export_onnx(model, INPUT), threads=1)
    images = torch.randn(5, *INPUT)  # a batch size other than the export's: the axis is dynamic
    (logits,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = model(images).numpy()
    assert logits.shape == (5, 10)
    assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max()


def test_compare_onnx_reports_a_ratio_per_model() -> None:
    big, small = create_model("resnet56"), create_model("resnet20")
    settings = LatencySettings(batch_sizes=(8,), threads=1, warmup=1, repeats=5)
    rows = compare_onnx([big, small], INPUT, settings)[8]
    assert rows[0]["ratio"] == 1.0
    assert rows[1]["ratio"] > 1.5  # ResNet-20 has 2.9x fewer MACs than ResNet-56


def test_sessions_do_not_spin_between_runs() -> None:
    # Interleaved timing of several sessions is only fair when idle thread pools sleep.
    session = onnx_session(export_onnx(create_model("resnet20", num_classes=10), INPUT), threads=2)
    options = session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)


def test_channels_last_timing_leaves_the_model_exportable() -> None:
    from secateurs.measurement import measure_latency

    model = create_model("resnet20").eval()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    measure_latency(model, (3, 32, 32), LatencySettings((1,), 1, repeats=1, channels_last=True))
    assert not any(p.is_inference() for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(export_onnx(model, (3, 32, 32))) > 100_000  # the weights are in the graph


def test_a_model_onnx_cannot_export_is_one_line() -> None:
    from secateurs.errors import SecateursError

    class Unexportable(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x, 3)  # 32 is no multiple of 3

    with pytest.raises(SecateursError, match=r"cannot export the model to ONNX \("):
        export_onnx(Unexportable(), (3, 32, 32))
