"""The engine's invariant (the physically pruned model computes what the masked model computes)
beyond test_pruning_invariant's default allocation: the uniform strategy, channel counts rounded
to multiples of 8 and 16, targets reached in several steps; and torchvision models with every
one-shot method."""

from __future__ import annotations

import copy

import pytest
import torch

from ci_guard import require
from pruning_helpers import masked_and_pruned_outputs, randomise_batchnorm, relative_difference
from secateurs.measurement import count_cost
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, Target
from secateurs.pruning.methods import ScoringData, create_method, list_methods
from secateurs.pruning.prune import PruneSettings, prune_model

CIFAR_INPUT = (3, 32, 32)
ONE_SHOT = ["bn_scale", "l1", "l2", "pfp", "random", "taylor", "wsp"]


def scoring_data(input_size: tuple[int, ...], seed: int = 1) -> ScoringData:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(8, *input_size, generator=generator)
    return ScoringData([(images, torch.randint(0, 10, (8,), generator=generator))])


def random_model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomise_batchnorm(create_model(name, num_classes=10), seed)


def assert_masked_equals_pruned(model, plan, input_size) -> torch.nn.Module:
    """The masked and the pruned copy of ``model`` agree; returns the pruned copy."""
    assert plan.removed_count > 0
    images = torch.randn(4, *input_size, generator=torch.Generator().manual_seed(2))
    masked, pruned, pruned_model = masked_and_pruned_outputs(model, plan, input_size, images)
    assert pruned.shape == (4, 10)
    assert relative_difference(masked, pruned) <= 1e-4
    return pruned_model


def test_every_one_shot_method_is_covered() -> None:
    assert sorted(ONE_SHOT) == list_methods()


ALLOCATIONS = {
    "uniform": Allocation(strategy="uniform"),
    "round8": Allocation(round_to=8),
    "round16": Allocation(round_to=16),
    "uniform-round8": Allocation(strategy="uniform", round_to=8),
}


# ResNet-20 in the fast subset; MobileNetV2 (depthwise convolutions, inverted residuals) is slower
MODELS = ["resnet20", pytest.param("mobilenetv2", marks=pytest.mark.slow)]


@pytest.mark.parametrize("method_name", ["l1", "taylor"])
@pytest.mark.parametrize("allocation", list(ALLOCATIONS))
@pytest.mark.parametrize("model_name", MODELS)
def test_pruned_equals_masked_with_other_allocations(
    model_name: str, allocation: str, method_name: str
) -> None:
    model = random_model(model_name)
    graph = ChannelGraph(model, CIFAR_INPUT)
    result = create_method(method_name).plan(
        graph, scoring_data(CIFAR_INPUT), Target("macs", 0.5), ALLOCATIONS[allocation]
    )
    pruned = assert_masked_equals_pruned(model, result.plan, CIFAR_INPUT)
    ratio = count_cost(pruned, CIFAR_INPUT)["macs"] / count_cost(model, CIFAR_INPUT)["macs"]
    assert ratio == pytest.approx(result.achieved, rel=1e-6)
    assert abs(ratio / 0.5 - 1) <= 0.02
    if allocation == "uniform":  # every group keeps the same fraction, to a channel or so
        kept = result.plan.kept(graph)
        fractions = [kept[g.root] / g.size for g in graph.prunable_groups]
        assert max(fractions) - min(fractions) <= 0.1  # (global ranking: 0.2 and 0.5 here)


@pytest.mark.parametrize("steps", [2, 3])
@pytest.mark.parametrize("model_name", MODELS)
def test_pruned_equals_masked_at_every_step(model_name: str, steps: int) -> None:
    """prune_model in several steps, then each step's plan replayed on a fresh copy: at every step
    the masked model computes what the pruned one does, and the replay ends where it did."""
    original = random_model(model_name)
    model = copy.deepcopy(original)
    settings = PruneSettings(target=Target("macs", 0.4), steps=steps)
    outcome = prune_model(model, CIFAR_INPUT, create_method("l1"), settings)
    assert len(outcome.plans) == steps  # geometric steps: none already met
    current = copy.deepcopy(original)
    for plan in outcome.plans:
        current = assert_masked_equals_pruned(current, plan, CIFAR_INPUT)
    assert abs(outcome.achieved / 0.4 - 1) <= 0.02
    images = torch.randn(3, *CIFAR_INPUT)
    with torch.no_grad():
        assert torch.equal(current.eval()(images), model.eval()(images))


# -- torchvision models, every one-shot method ---------------------------------------------------
TORCHVISION = {"resnet18": (3, 32, 32), "mobilenet_v2": (3, 32, 32)}


@pytest.mark.slow
@pytest.mark.parametrize("method_name", ONE_SHOT)
@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_pruned_equals_masked_with_every_method(name: str, method_name: str) -> None:
    require("torchvision")
    input_size = TORCHVISION[name]
    model = random_model(f"torchvision:{name}")
    graph = ChannelGraph(model, input_size)
    result = create_method(method_name).plan(
        graph, scoring_data(input_size), Target("macs", 0.5), Allocation()
    )
    pruned = assert_masked_equals_pruned(model, result.plan, input_size)
    ratio = count_cost(pruned, input_size)["macs"] / count_cost(model, input_size)["macs"]
    assert abs(ratio / 0.5 - 1) <= 0.02, ratio
