"""Targets, rankings, rounding and per-layer ratios."""

from __future__ import annotations

import pytest
import torch

from pruning_helpers import two_convs
from secateurs.errors import SecateursError
from secateurs.measurement import count_cost
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, Target, remove_channels
from secateurs.pruning.allocation import Allocator, allocate_layer_ratios
from secateurs.pruning.cost_model import CostModel
from secateurs.pruning.methods import create_method
from secateurs.pruning.prune import PruneSettings, prune_model, step_targets

INPUT = (3, 32, 32)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Models here are untrained: their random weights decide the plans, so every test draws
    them from the same seed, whatever ran before it in the process."""
    torch.manual_seed(0)


@pytest.mark.parametrize("strategy", ["global", "uniform"])
@pytest.mark.parametrize(("kind", "ratio"), [("macs", 0.5), ("macs", 0.3), ("params", 0.4)])
def test_target_met_within_two_percent(strategy: str, kind: str, ratio: float) -> None:
    model = create_model("resnet20")
    before = count_cost(model, INPUT)[kind]
    graph = ChannelGraph(model, INPUT)
    allocation = Allocation(strategy=strategy)
    result = create_method("l2").plan(graph, None, Target(kind, ratio), allocation)
    plan, achieved = result.plan, result.achieved
    remove_channels(graph, plan)
    measured = count_cost(model, INPUT)[kind] / before
    assert measured == pytest.approx(achieved, rel=1e-9)
    assert abs(measured / ratio - 1) <= 0.02


def test_uniform_keeps_the_same_fraction_everywhere() -> None:
    graph = ChannelGraph(create_model("resnet56"), INPUT)
    allocator = Allocator(graph, create_method("l1").score(graph, None), Allocation("uniform"))
    kept = allocator.plan_uniform(0.5).kept(graph)
    fractions = {kept[g.root] / g.size for g in graph.prunable_groups}
    assert fractions == {0.5}


def test_channel_counts_are_rounded_to_the_multiple() -> None:
    # (seeded: on some random weights 4 cannot meet 0.5 within 5% and the allocator falls back to 2)
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    plan = (
        create_method("l1")
        .plan(graph, None, Target("macs", 0.5), Allocation(round_to=4, tolerance=0.05))
        .plan
    )
    kept = plan.kept(graph)
    assert all(kept[g.root] % 4 == 0 for g in graph.prunable_groups)


def test_cost_model_predicts_surgery_for_resnet() -> None:
    model = create_model("resnet20")
    graph = ChannelGraph(model, INPUT)
    allocator = Allocator(graph, create_method("random").score(graph, None), Allocation())
    plan = allocator.plan_global(150)
    predicted = allocator.predicted_ratio(plan, "params")
    assert allocator.measured_ratio(plan, "params") == pytest.approx(predicted, rel=1e-4)
    assert isinstance(allocator.cost_model, CostModel)


def test_layer_ratios_prune_exactly_those_groups() -> None:
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    scores = create_method("l1").score(graph, None)
    plan = allocate_layer_ratios(
        graph, scores, {"layer1.0.conv1": 0.5, "layer3.1.conv1": 0.25}, Allocation()
    )
    assert {root: len(idx) for root, idx in plan.removals.items()} == {
        "layer1.0.conv1": 8,
        "layer3.1.conv1": 16,
    }
    lowest = torch.argsort(scores["layer1.0.conv1"])[:8].sort().values.tolist()
    assert plan.removals["layer1.0.conv1"] == lowest


def test_global_ranking_removes_lowest_scores_first() -> None:
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    scores = {
        g.root: torch.arange(g.size, dtype=torch.float64) + 100 for g in graph.prunable_groups
    }
    scores["layer2.1.conv1"] = torch.arange(32, dtype=torch.float64)  # far below every other
    plan = Allocator(graph, scores, Allocation()).plan_global(10)
    assert plan.removals == {"layer2.1.conv1": list(range(10))}


def test_iterative_steps_reach_the_target_geometrically() -> None:
    assert step_targets(0.25, 2) == pytest.approx([0.5, 0.25])
    model = create_model("resnet20")
    calls = []
    outcome = prune_model(
        model,
        INPUT,
        create_method("l1"),
        PruneSettings(Target("macs", 0.4), steps=3),
        between_steps=lambda m, step: calls.append(step),
    )
    assert calls == [0, 1]
    assert len(outcome.rounds) == 3
    assert abs(outcome.achieved / 0.4 - 1) <= 0.02


def test_a_step_that_overshoots_the_next_goal_skips_it() -> None:
    # four channels a layer: a step removes at least a quarter of a layer, past the next goals
    torch.manual_seed(0)
    model = two_convs(4)
    settings = PruneSettings(Target("macs", 0.8), steps=4)
    outcome = prune_model(model, (3, 8, 8), create_method("l1"), settings)
    assert len(outcome.rounds) == 1  # steps 2-4 found their goals already met
    assert outcome.achieved == pytest.approx(0.768, abs=0.001)


def test_layer_ratios_are_not_repeated_over_steps() -> None:
    with pytest.raises(SecateursError, match="per-layer ratios are applied in one step"):
        PruneSettings(layer_ratios={"layer1.0.conv1": 0.5}, steps=2)


def test_coarse_rounding_gives_way_to_the_target() -> None:
    """Multiples of 16 cannot bring ResNet-20 (widths 16/32/64) to 30% of its MACs: the
    allocator halves the multiple until the target is met, and says which one it used."""
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    allocator = Allocator(graph, create_method("l1").score(graph, None), Allocation(round_to=16))
    plan, achieved = allocator.meet(Target("macs", 0.3))
    assert abs(achieved / 0.3 - 1) <= 0.02
    assert allocator.settings.round_to < 16
    kept = plan.kept(graph)
    assert all(kept[g.root] % allocator.settings.round_to == 0 for g in graph.prunable_groups)


def test_a_target_missed_beyond_the_tolerance_is_said(caplog) -> None:
    # 1% of VGG-11's MACs with no fractional floor: the closest plan the allocator finds is far
    # off, and it says so
    torch.manual_seed(0)
    graph = ChannelGraph(create_model("vgg11_bn_quarter"), INPUT)
    allocation = Allocation(min_fraction=0, ends_fraction=0)
    with caplog.at_level("WARNING", logger="secateurs.pruning.allocation"):
        achieved = create_method("l1").plan(graph, None, Target("macs", 0.01), allocation).achieved
    assert achieved == pytest.approx(0.00368, abs=1e-5)
    (warning,) = [r.getMessage() for r in caplog.records if r.name.endswith(".allocation")]
    assert warning.startswith("the closest plan found keeps a macs ratio of 0.0037")
    assert "(63.2% off; tolerance 1.0%)" in warning
