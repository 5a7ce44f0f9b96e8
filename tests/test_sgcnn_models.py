"""SG-CNN on every registered model: grouped, compacted into diverse group convolutions (and
channels no group reads removed), the compact model computes what the masked one does, its MACs
are what its layers compute, and it reloads from JSON."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from pruning_helpers import randomise_batchnorm, relative_difference
from secateurs.measurement import count_cost
from secateurs.measurement.latency import LatencySettings
from secateurs.models import create_model, list_models
from secateurs.pruning.compaction.diverse_conv import DiverseGroupConv2d
from secateurs.pruning.sgcnn.callback import SGCNNSettings
from secateurs.pruning.sgcnn.method import SGCNNMethod
from secateurs.store import Manifest, load_model, save_model

INPUT = (3, 32, 32)
HEAVY = {"resnet56", "resnet110", "vgg16_bn"}
MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()]
UNTIMED = LatencySettings(repeats=0)


def grouped(model_name: str, target: float = 0.5, groups: int = 4):
    torch.manual_seed(0)
    model = randomise_batchnorm(create_model(model_name, num_classes=10)).eval()
    settings = SGCNNSettings(target_macs=target, groups=groups, scheme="G", epochs=1)
    method = SGCNNMethod(settings, INPUT)
    callback = method.callback()
    callback.prepare(model)
    callback.apply_due(0)  # scheme G: every stage at the start
    return model, method


@pytest.mark.parametrize("model_name", MODELS)
def test_diverse_model_equals_masked_model(model_name: str, tmp_path: Path) -> None:
    model, method = grouped(model_name)
    masked = copy.deepcopy(model)
    compaction = method.compact(model, INPUT, UNTIMED)
    diverse = [m for m in model.modules() if isinstance(m, DiverseGroupConv2d)]
    assert len(diverse) == len(method.callback().groups)  # untimed: every grouped layer diverse
    images = torch.randn(4, *INPUT)
    with torch.no_grad():
        assert relative_difference(model.eval()(images), masked.eval()(images)) <= 1e-5
    # the cost counted is the work the layers do: less than the dense model's
    assert compaction.macs == count_cost(model, INPUT)["macs"] < count_cost(masked, INPUT)["macs"]
    # the manifest's JSON rebuilds it on a fresh model
    manifest = Manifest(
        model_name,
        {"num_classes": 10},
        [str(i) for i in range(10)],
        list(INPUT),
        [0.5] * 3,
        [0.25] * 3,
    )
    manifest.pruning = method.manifest_record(None, compaction)
    save_model(model, tmp_path / "m", manifest)
    again, _ = load_model(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(again(images), model(images))


def test_connection_count_halves_with_the_target() -> None:
    model, method = grouped("resnet20", target=0.5)
    dense = count_cost(model, INPUT)["macs"]
    method.compact(model, INPUT, UNTIMED)
    # the paper's count (kept connections) meets the target within one group pair a layer
    assert abs(method.connection_macs / dense - 0.5) <= 0.02
