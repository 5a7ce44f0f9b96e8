"""The invariant on torchvision models at random init, each pruned to about half its MACs. Inputs
are 64x64 to keep the suite fast; channel structure does not depend on resolution."""

from __future__ import annotations

import copy

import pytest
import torch

from ci_guard import require
from pruning_helpers import masked_and_pruned_outputs, randomise_batchnorm, relative_difference
from secateurs.errors import SecateursError
from secateurs.measurement import count_cost
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, Target, apply_masks
from secateurs.pruning.methods import create_method
from secateurs.pruning.prune import PruneSettings, prune_model

require("torchvision")
INPUT = (3, 64, 64)
PRUNABLE = [
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "densenet121",
    "googlenet",
    "efficientnet_b0",
    "regnet_x_400mf",
    "vgg16_bn",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", PRUNABLE)
def test_torchvision_model_pruned_to_half_macs(name: str) -> None:
    torch.manual_seed(0)
    model = randomise_batchnorm(create_model(f"torchvision:{name}", num_classes=10))
    graph = ChannelGraph(model, INPUT)
    plan = create_method("l1").plan(graph, None, Target("macs", 0.5), Allocation()).plan
    images = torch.randn(2, *INPUT)
    masked, pruned, pruned_model = masked_and_pruned_outputs(model, plan, INPUT, images)
    assert pruned.shape == (2, 10)
    assert relative_difference(masked, pruned) <= 1e-4
    ratio = count_cost(pruned_model, INPUT)["macs"] / count_cost(model, INPUT)["macs"]
    assert abs(ratio / 0.5 - 1) <= 0.02, ratio


def test_convnext_only_prunes_mlp_channels_and_says_why() -> None:
    """ConvNeXt's residual stream passes through LayerNorm, which normalises across channels:
    removing a zeroed channel would change the others, so those groups are refused with the
    reason; the MLP hidden channels remain prunable."""
    model = randomise_batchnorm(create_model("torchvision:convnext_tiny", num_classes=10))
    graph = ChannelGraph(model, INPUT)
    refused = [g for g in graph.groups if not g.prunable and "LayerNorm" in g.reason]
    assert refused, "the LayerNorm-coupled groups must be refused"
    assert all("normalises across channels" in g.reason for g in refused)
    prunable = graph.prunable_groups
    assert prunable and all(".block.3" in g.root for g in prunable)  # the MLP's first Linear
    with pytest.raises(SecateursError, match="cannot prune group"):
        from secateurs.pruning import PruningPlan

        PruningPlan({refused[0].root: [0]}).validate(graph)


def test_shufflenet_keeps_its_channel_shuffle_whole_and_prunes_the_rest() -> None:
    """ShuffleNetV2's channel shuffle (view, transpose, view) breaks Torch-Pruning 1.6's reshape
    index mapping (a division by zero) and its blocks split channels in two: those groups are
    kept whole with the reason (issue 29), the rest is pruned exactly to half the MACs."""
    torch.manual_seed(0)
    model = randomise_batchnorm(create_model("torchvision:shufflenet_v2_x1_0", num_classes=10))
    pruned = copy.deepcopy(model)
    outcome = prune_model(pruned, INPUT, create_method("l1"), PruneSettings(Target("macs", 0.5)))
    reasons = " ".join(row["reason"] for row in outcome.protected)
    assert "reshape" in reasons and "channel split" in reasons
    masked = copy.deepcopy(model)
    apply_masks(ChannelGraph(masked, INPUT), outcome.plans[0])
    images = torch.randn(2, *INPUT)
    with torch.no_grad():
        assert relative_difference(masked(images), pruned(images)) <= 1e-4
    assert abs(outcome.achieved / 0.5 - 1) <= 0.02
