"""Dead channels: the group channels every consuming layer has stopped reading (all their columns
pruned), found on the channel graph and removed physically through the engine; and the relative
difference a compacted layer is checked with against its dense form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from secateurs.pruning.graph import IN, ChannelGraph
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.surgery import remove_channels

CONSUMER_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


def dead_channels(graph: ChannelGraph, column_keeps: Mapping[str, Tensor]) -> PruningPlan:
    """The group channels every consumer has dropped (all their columns pruned).

    ``column_keeps[name]``: (C_in, kh, kw) bool of a ``groups=1`` convolution; a consumer without
    one (a linear layer, a layer SPP did not prune) keeps every channel it reads alive.
    """
    removals = {}
    for group in graph.prunable_groups:
        consumers = [m for m in group.layers(IN, CONSUMER_TYPES)]
        if not consumers:
            continue
        dead = torch.ones(group.size, dtype=torch.bool)
        for member in consumers:
            keep = column_keeps.get(member.name)
            if keep is None or getattr(member.module, "groups", 1) != 1:
                dead[:] = False
                break
            channel_alive = keep.flatten(1).any(1)
            for index, root in zip(member.indices, member.root_indices, strict=True):
                if channel_alive[index]:
                    dead[root] = False
        indices = torch.nonzero(dead).flatten().tolist()
        if len(indices) == group.size:
            indices = indices[1:]  # never empty a layer: one dead channel stays (exact anyway)
        if indices:
            removals[group.root] = indices
    return PruningPlan(removals)


def remove_dead_channels(
    model: nn.Module, input_size: Sequence[int], column_keeps: Mapping[str, Tensor]
) -> tuple[PruningPlan, list[list[Any]], dict[str, Tensor]]:
    """Remove :func:`dead_channels` physically; returns the plan, the history and the column
    masks re-indexed to the layers' new input channels."""
    graph = ChannelGraph(model, input_size)
    plan = dead_channels(graph, column_keeps)
    kept_inputs = {
        name: torch.ones(len(keep), dtype=torch.bool) for name, keep in column_keeps.items()
    }
    for group in graph.groups:
        removed = set(plan.removals.get(group.root, []))
        for member in group.layers(IN, CONSUMER_TYPES):
            if member.name in kept_inputs and removed:
                for index, root in zip(member.indices, member.root_indices, strict=True):
                    if root in removed:
                        kept_inputs[member.name][index] = False
    history = remove_channels(graph, plan) if plan.removals else []
    remaining = {name: keep[kept_inputs[name]] for name, keep in column_keeps.items()}
    return plan, history, remaining


def max_relative_difference(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
