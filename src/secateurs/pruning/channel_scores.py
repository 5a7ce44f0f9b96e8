"""Channel-scoring helpers shared by the one-shot methods (:mod:`secateurs.pruning.methods`) and
the training-time ones: a group's producing layers, per-layer values scattered onto a group's
channels, the tied-group mean, the BatchNorm-gate gradient, and the warning about plans that leave
a group almost empty."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from secateurs.pruning.graph import ChannelGraph, ChannelGroup, Member
from secateurs.pruning.plan import PruningPlan

THIN_WIDTH = 0.1  # a plan leaving a group under this fraction of its channels is warned about


def thin_groups(
    graph: ChannelGraph, plan: PruningPlan, fraction: float = THIN_WIDTH
) -> list[tuple[str, int, int]]:
    """(root, kept, size) of every group ``plan`` leaves under ``fraction`` of its channels."""
    thin = []
    for group in graph.prunable_groups:
        kept = group.size - len(set(plan.removals.get(group.root, [])))
        if kept < fraction * group.size:
            thin.append((group.root, kept, group.size))
    return thin


def describe_thin(thin: list[tuple[str, int, int]]) -> str:
    """``root kept/size`` of each group :func:`thin_groups` found, for a warning."""
    return ", ".join(f"{root} {kept}/{size}" for root, kept, size in thin)


def scatter(group: ChannelGroup, member: Member, per_channel: Tensor) -> Tensor:
    """Values given per channel of ``member``'s layer, summed onto the group's channels."""
    device = per_channel.device  # the model's: scores stay where the weights are
    out = torch.zeros(group.size, dtype=torch.float64, device=device)
    index = torch.tensor(member.indices, dtype=torch.long, device=device)
    root = torch.tensor(member.root_indices, dtype=torch.long, device=device)
    out.index_add_(0, root, per_channel.detach().double()[index])
    return out


def tied_mean(total: Tensor, members: Sequence[Member]) -> Tensor:
    """A tied group's score on the scale of one member: its total over the ``k`` members that
    produce (or gate) its channels, divided by ``k``. Every method that adds up members uses it
    (docs/decisions.md, "Issue 30: one aggregation for tied groups"): a residual stream scored by
    seven BatchNorms is then ranked against a channel scored by one, not seven times above it."""
    return total / max(1, len(members))


def producing_layers(group: ChannelGroup) -> list[Member]:
    """Members whose output channels are the group's channels: convolutions and linear layers."""
    return group.layers("out", (nn.modules.conv._ConvNd, nn.Linear))


def gate_gradient(module: nn.Module) -> Tensor:
    """g dL/dg for a gate after ``module``, per output channel (gradients must be populated)."""
    total = (
        (module.weight * module.weight.grad).flatten(1).sum(1)
        if module.weight.ndim > 1
        else (module.weight * module.weight.grad)
    )
    if getattr(module, "bias", None) is not None and module.bias.grad is not None:
        total = total + module.bias * module.bias.grad
    return total.detach()
