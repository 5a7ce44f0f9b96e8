"""The engine's invariant over every registered model and every registered method: the physically
pruned model computes what the masked model computes, costs less, and keeps its output shape."""

from __future__ import annotations

import pytest
import torch

from pruning_helpers import masked_and_pruned_outputs, randomise_batchnorm, relative_difference
from secateurs.measurement import count_cost
from secateurs.models import create_model, list_models
from secateurs.pruning import Allocation, ChannelGraph, Target
from secateurs.pruning.methods import ScoringData, create_method, list_methods

INPUT = (3, 32, 32)
# a few seconds per method each: run by `make test`, left out of `make test-fast`
HEAVY = {"resnet56", "resnet110", "vgg16_bn"}
MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()]


@pytest.mark.parametrize("method_name", list_methods())
@pytest.mark.parametrize("model_name", MODELS)
def test_pruned_equals_masked(model_name: str, method_name: str) -> None:
    torch.manual_seed(0)
    model = randomise_batchnorm(create_model(model_name, num_classes=10))
    graph = ChannelGraph(model, INPUT)
    data = ScoringData([(torch.randn(8, *INPUT), torch.randint(0, 10, (8,)))])
    result = create_method(method_name).plan(graph, data, Target("macs", 0.5), Allocation())
    plan, achieved = result.plan, result.achieved
    assert plan.removed_count > 0
    images = torch.randn(4, *INPUT)
    masked, pruned, pruned_model = masked_and_pruned_outputs(model, plan, INPUT, images)
    assert pruned.shape == (4, 10)
    assert relative_difference(masked, pruned) <= 1e-4
    ratio = count_cost(pruned_model, INPUT)["macs"] / count_cost(model, INPUT)["macs"]
    assert ratio == pytest.approx(achieved, rel=1e-6)
    assert abs(ratio / 0.5 - 1) <= 0.02
