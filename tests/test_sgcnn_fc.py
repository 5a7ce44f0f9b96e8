"""SG-CNN on fully connected layers (``--fc``): grouped like convolutions, never beyond 60% of
their connections, the convolutions taking up the rest of the MACs target; the compacted model
(FC layers dense with their zeros) computes what the masked one does."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from secateurs.measurement import LatencySettings, count_cost
from secateurs.models import create_model
from secateurs.pruning.sgcnn.callback import SGCNNSettings
from secateurs.pruning.sgcnn.layers import FC_CAP
from secateurs.pruning.sgcnn.method import SGCNNMethod, connection_macs

INPUT = (3, 32, 32)


def test_fc_layers_are_grouped_capped_and_the_target_is_met() -> None:
    torch.manual_seed(0)
    model = create_model("vgg11_bn_quarter", num_classes=10).eval()
    settings = SGCNNSettings(0.3, groups=4, scheme="G", epochs=2, linear=True)
    method = SGCNNMethod(settings, INPUT)
    callback = method.callback()
    callback.prepare(model)
    linears = [n for n, m in callback.layers.items() if isinstance(m, nn.Linear)]
    assert linears == ["classifier.0", "classifier.3"]  # not the last one
    callback.apply_due(epoch=0)
    for name, groups in callback.groups.items():
        if name in linears:
            # at the cap, over by less than one (group, input) pair: at most 1% here
            assert FC_CAP <= groups.sparsity <= FC_CAP + 0.01
        else:
            assert groups.sparsity > FC_CAP  # the convolutions take up the rest
    assert connection_macs(model, INPUT, callback.groups) / count_cost(model, INPUT)["macs"] == (
        pytest.approx(0.3, abs=0.01)
    )
    masked = copy.deepcopy(model)
    images = torch.randn(2, *INPUT)
    compaction = method.compact(model, INPUT, LatencySettings(repeats=0))
    forms = {layer["name"]: layer["choice"] for layer in compaction.layers}
    assert forms["classifier.0"] == "dense (linear)"
    with torch.no_grad():
        expected, got = masked(images), model(images)
    assert float((got - expected).abs().max() / expected.abs().max()) <= 1e-4
