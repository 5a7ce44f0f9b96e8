"""Structures the dependency graph gets wrong are kept whole (with the reason) and the rest is
pruned exactly: one tiny hand-built module per structure (issue 29: channel splits into
concatenations, channel slices, ghost modules, unmatched concatenations, non-depthwise grouped
convolutions, runaway groups)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from pruning_helpers import masked_and_pruned_outputs, randomise_batchnorm, relative_difference
from secateurs.errors import SecateursError
from secateurs.measurement import count_cost
from secateurs.pruning import Allocation, ChannelGraph, Target, tracing
from secateurs.pruning.methods import create_method
from secateurs.pruning.prune import PruneSettings, prune_model
from secateurs.pruning.trial import verify_groups

INPUT = (3, 16, 16)


def conv_bn(inputs: int, outputs: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, groups=groups, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(),
    )


class Head(nn.Module):
    def __init__(self, body: nn.Module, width: int) -> None:
        super().__init__()
        self.body, self.fc = body, nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean((2, 3)))


class CrossStage(nn.Module):
    """A cross-stage partial block: one half of the channels through a block, both halves joined."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.expand = conv_bn(3, 8), conv_bn(8, 16)
        self.block = nn.Sequential(conv_bn(8, 12), conv_bn(12, 8))
        self.transition = conv_bn(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, through = self.expand(self.stem(x)).split(8, dim=1)
        return self.transition(torch.cat([kept, self.block(through)], 1))


class Ghost(nn.Module):
    """A ghost module: a cheap depthwise copy of the primary features joined to them (sliced to
    ``out`` channels), then a depthwise and a dense convolution (GhostNet's bottleneck)."""

    def __init__(self, out: int = 12) -> None:
        super().__init__()
        self.stem, self.primary = conv_bn(3, 8), conv_bn(8, 8)
        self.cheap, self.out = conv_bn(8, 8, groups=8), out
        self.depthwise, self.tail = conv_bn(out, out, groups=out), conv_bn(out, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        primary = self.primary(self.stem(x))
        joined = torch.cat([primary, self.cheap(primary)], 1)
        return self.tail(self.depthwise(joined[:, : self.out] if self.out < 16 else joined))


class PartialResidual(nn.Module):
    """RexNet's block: the shortcut is added to the first channels only (slices and a concat)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.body, self.tail = conv_bn(3, 8), conv_bn(8, 12), conv_bn(12, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.body(x)
        y = torch.cat([y[:, :8] + x, y[:, 8:]], 1)
        return self.tail(y)


class ImageConcat(nn.Module):
    """The image concatenated to features: an input the graph has no node for."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.middle, self.tail = conv_bn(3, 8), conv_bn(8, 8), conv_bn(11, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(torch.cat([x, self.middle(self.stem(x))], 1))


class SplitAttention(nn.Module):
    """ResNeSt's split attention: channels viewed as (radix, C / radix), summed over radix."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.wide, self.tail = conv_bn(3, 8), conv_bn(8, 16), conv_bn(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = self.wide(self.stem(x))
        return self.tail(wide.view(wide.shape[0], 2, 8, *wide.shape[2:]).sum(1))


class GroupedBottleneck(nn.Module):
    """A grouped (not depthwise) convolution between two dense ones (ResNeXt, RegNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.grouped, self.tail = conv_bn(3, 8), conv_bn(8, 16, groups=4), conv_bn(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.grouped(self.stem(x)))


def _model(body: Callable[[], nn.Module], width: int = 8) -> nn.Module:
    """``body()`` under a fixed seed, with a linear head."""
    torch.manual_seed(0)
    return randomise_batchnorm(Head(body(), width))


def _check_pruned_rest(model: nn.Module, target: float = 0.8) -> tuple[ChannelGraph, float]:
    """The protected groups stay whole, the rest prunes to ``target``: masked == pruned."""
    graph = ChannelGraph(model, INPUT)
    verify_groups(graph)
    protected = {g.root for g in graph.groups if g.structural}
    plan = create_method("l1").plan(graph, None, Target("macs", target), Allocation()).plan
    assert plan.removals and not protected & {r for r, i in plan.removals.items() if i}
    images = torch.randn(2, *INPUT)
    masked, pruned, pruned_model = masked_and_pruned_outputs(model, plan, INPUT, images)
    assert relative_difference(masked, pruned) <= 1e-4
    ratio = count_cost(pruned_model, INPUT)["macs"] / count_cost(model, INPUT)["macs"]
    return graph, ratio


def _reasons(graph: ChannelGraph) -> dict[str, str]:
    """{layer: why its output channels are kept whole}, for every layer of a protected group."""
    return {
        member.name: group.reason
        for group in graph.groups
        if group.structural
        for member in group.members
        if member.direction == "out"
    }


def test_channel_split_into_a_concatenation_is_kept_whole() -> None:
    model = _model(CrossStage, 16)
    graph, ratio = _check_pruned_rest(model)
    reasons = _reasons(graph)
    assert "body.expand.0" in reasons and "channel split" in reasons["body.expand.0"]
    assert graph.group("body.block.0.0").prunable  # inside the partial block: pruned
    assert abs(ratio / 0.8 - 1) <= 0.02


def test_channel_slice_of_a_ghost_module_is_kept_whole() -> None:
    graph, _ = _check_pruned_rest(_model(lambda: Ghost(out=12)))
    assert "channel slice" in _reasons(graph)["body.primary.0"]


def test_ghost_copy_read_by_a_depthwise_layer_is_kept_whole() -> None:
    """No slice (all 16 channels kept): the depthwise layer after the concatenation ties each
    primary channel to its copy, and a plan keeping some of the group could empty one side."""
    graph, _ = _check_pruned_rest(_model(lambda: Ghost(out=16)), target=0.9)
    assert "of the group's 16 channels" in _reasons(graph)["body.primary.0"]


class StandardisedConv(nn.Conv2d):
    """Weight standardisation (NFNet's ScaledStdConv2d): each filter normalised over its inputs,
    so removing an input channel changes the others' weights; no structure check knows it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.weight.mean((1, 2, 3), keepdim=True)
        std = self.weight.std((1, 2, 3), keepdim=True)
        return self._conv_forward(x, (self.weight - mean) / (std + 1e-5), self.bias)


def test_a_structure_no_check_knows_is_caught_by_the_trial_removal() -> None:
    def body() -> nn.Module:
        return nn.Sequential(conv_bn(3, 8), conv_bn(8, 8), StandardisedConv(8, 8, 3, padding=1))

    graph, _ = _check_pruned_rest(_model(body), target=0.9)
    assert "trial removal" in _reasons(graph)["body.1.0"]


def test_partial_residual_is_bounded_and_kept_whole() -> None:
    graph, _ = _check_pruned_rest(_model(PartialResidual), target=0.9)
    assert "channel slice" in _reasons(graph)["body.body.0"]


def test_concatenation_with_the_image_is_kept_whole() -> None:
    graph, _ = _check_pruned_rest(_model(ImageConcat))
    assert "concatenation" in _reasons(graph)["body.middle.0"]


def test_reshape_regrouping_channels_is_kept_whole() -> None:
    graph, _ = _check_pruned_rest(_model(SplitAttention))
    assert "reshape regroups the channels" in _reasons(graph)["body.wide.0"]


def test_grouped_convolution_that_is_not_depthwise_is_kept_whole() -> None:
    graph, _ = _check_pruned_rest(_model(GroupedBottleneck))
    assert "grouped convolution (groups=4)" in _reasons(graph)["body.stem.0"]


def test_a_runaway_group_is_kept_whole_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "MAX_GROUP_ITEMS", 3)
    graph = ChannelGraph(_model(CrossStage, 16), INPUT)
    unbuilt = [g for g in graph.groups if "could not follow" in g.reason]
    assert unbuilt and all(g.structural and not g.prunable for g in unbuilt)
    assert all("RunawayGroup" in g.reason for g in unbuilt)


def test_a_model_with_nothing_safe_to_prune_is_refused_in_one_line() -> None:
    model = _model(lambda: nn.Sequential(conv_bn(3, 8), conv_bn(8, 8, groups=2)))
    with pytest.raises(SecateursError, match="nothing in Head can be pruned safely"):
        prune_model(model, INPUT, create_method("l1"), PruneSettings(Target("macs", 0.8)))
