"""The wrapper's guards over Torch-Pruning's footguns, each with the error a user sees."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pruning_helpers import two_convs
from secateurs.errors import SecateursError
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, PruningPlan, Target, remove_channels
from secateurs.pruning.allocation import Allocator, check_scores
from secateurs.pruning.graph import OUT
from secateurs.pruning.methods import create_method

INPUT = (3, 32, 32)


def test_tracing_works_inside_no_grad() -> None:
    model = create_model("resnet20")
    with torch.no_grad():
        graph = ChannelGraph(model, INPUT)
    assert len(graph.groups) == 13  # 9 block-internal, 3 stage streams, the classifier


def test_classifier_is_protected_and_keeps_its_outputs() -> None:
    model = create_model("resnet20", num_classes=10)
    graph = ChannelGraph(model, INPUT)
    fc_group = graph.group("fc")
    assert not fc_group.prunable and "model's output" in fc_group.reason
    with pytest.raises(SecateursError, match="cannot prune group fc"):
        PruningPlan({"fc": [0, 1]}).validate(graph)
    # even the harshest plan leaves the output alone
    plan = create_method("l1").plan(graph, None, Target("macs", 0.3), Allocation()).plan
    remove_channels(graph, plan)
    assert model.fc.out_features == 10


def test_scores_of_the_wrong_length_are_refused() -> None:
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    scores = {group.root: torch.ones(group.size) for group in graph.prunable_groups}
    root = graph.prunable_groups[0].root
    scores[root] = torch.ones(graph.prunable_groups[0].size + 1)
    with pytest.raises(SecateursError, match=f"scores for group {root} have shape"):
        check_scores(graph, scores)
    scores[root] = torch.full((graph.prunable_groups[0].size,), float("nan"))
    with pytest.raises(SecateursError, match="not all finite"):
        check_scores(graph, scores)
    del scores[root]
    with pytest.raises(SecateursError, match="no scores for group"):
        check_scores(graph, scores)


class GroupedNet(nn.Module):
    """A grouped (not depthwise) convolution after a concatenation: Torch-Pruning 1.6.1 fails on
    this with 'INDICES element is out of DATA bounds'."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=4)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.grouped(torch.cat([self.a(x), self.b(x)], 1))
        return self.head(x.mean((2, 3)))


def test_unsupported_structure_is_named() -> None:
    graph = ChannelGraph(GroupedNet(), INPUT)
    refused = {g.root: g.reason for g in graph.groups if not g.prunable}
    assert "a" in refused and "grouped convolution (groups=4)" in refused["a"]
    assert "grouped" in refused["a"]
    with pytest.raises(SecateursError, match="grouped is a grouped convolution"):
        PruningPlan({"a": [0]}).validate(graph)


def test_grouped_convolution_with_as_many_groups_as_outputs_is_not_depthwise() -> None:
    # 16 -> 8 channels in 8 groups: two inputs a group, so not depthwise, so not prunable
    model = two_convs(16, 8, groups=8).eval()
    graph = ChannelGraph(model, (3, 8, 8))
    refused = {g.root: g.reason for g in graph.groups if not g.prunable}
    assert "grouped convolution (groups=8)" in refused["3"]
    assert not graph.prunable_groups  # the first conv's channels feed it: refused with it
    with pytest.raises(SecateursError, match="cannot prune group 3"):
        PruningPlan({"3": [0, 3]}).validate(graph)


def test_depthwise_convolution_is_pruned_with_the_channels_it_reads() -> None:
    # 8 -> 8 channels in 8 groups: depthwise, its outputs tied one to one to its inputs, so the
    # first convolution's channels run through it in one group, and that group is prunable
    model = two_convs(8, 8, groups=8).eval()
    graph = ChannelGraph(model, (3, 8, 8))
    (group,) = [g for g in graph.groups if "0" in {m.name for m in g.layers(OUT)}]
    assert group.prunable, group.reason
    assert {"0", "1", "3", "4"} <= {m.name for m in group.layers(OUT)}  # convs and BatchNorms
    remove_channels(graph, PruningPlan({group.root: [0, 3]}))
    assert (model[0].out_channels, model[3].in_channels, model[3].out_channels) == (6, 6, 6)
    assert model[3].groups == 6 and model[8].in_features == 6


def test_plan_that_empties_a_layer_is_refused() -> None:
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    with pytest.raises(SecateursError, match=r"would empty layer layer1\.0\.conv1"):
        PruningPlan({"layer1.0.conv1": list(range(16))}).validate(graph)


def test_unreachable_target_is_refused() -> None:
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    allocation = Allocation(min_channels=8)
    with pytest.raises(SecateursError, match="cannot be met above the channel floor"):
        create_method("l1").plan(graph, None, Target("macs", 0.05), allocation)


def test_bad_targets_are_refused() -> None:
    for ratio in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(SecateursError, match="between 0 and 1"):
            Target("macs", ratio)
    with pytest.raises(SecateursError, match="'macs', 'params' or 'latency', not 'flops'"):
        Target("flops", 0.5)
    assert Target("latency", 0.5).kind == "latency"  # a measured latency target (issue 26)


def test_untraceable_model_gives_one_line_error() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("no forward here")

    with pytest.raises(SecateursError, match="cannot trace Broken"):
        ChannelGraph(Broken(), INPUT)


def test_allocator_never_empties_a_group() -> None:
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    scores = create_method("l1").score(graph, None)
    allocator = Allocator(graph, scores, Allocation(strategy="global", min_channels=2))
    plan = allocator.plan_global(10_000)
    kept = plan.kept(graph)
    assert min(kept[g.root] for g in graph.prunable_groups) == 2


def test_surgery_leaves_the_model_in_the_mode_it_found_it() -> None:
    for training in (True, False):
        model = create_model("resnet20").train(training)
        graph = ChannelGraph(model, INPUT)
        remove_channels(graph, PruningPlan({"layer1.0.conv1": [0, 1]}))
        assert model.training is training
        assert model.layer1[0].conv1.out_channels == 14


@pytest.mark.parametrize("method", ["bn_scale", "taylor", "l1"])
def test_batchnorm_without_affine_parameters_is_refused_not_crashed(method: str) -> None:
    from secateurs.pruning.methods.base import ScoringData

    torch.manual_seed(0)
    model = two_convs(8, affine=False).eval()
    graph = ChannelGraph(model, (3, 8, 8))
    refused = {g.root: g.reason for g in graph.groups if not g.prunable}
    assert "1 is a BatchNorm without affine parameters" in refused["0"]
    data = ScoringData(batches=[(torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,)))])
    result = create_method(method).plan(graph, data, Target("macs", 0.7), Allocation())
    # a plan, from the affine BatchNorm's group alone: 3 of its 8 channels come closest (0.73)
    assert set(result.plan.removals) == {"3"} and len(result.plan.removals["3"]) == 3
    assert abs(result.achieved / 0.7 - 1) <= 0.05
