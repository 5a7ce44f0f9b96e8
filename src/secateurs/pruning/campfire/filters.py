"""Campfire's filter level: whole channels, through the engine's coupled groups (a residual
stream's channels go together), chosen by magnitude and zeroed where they are produced.

A channel is zeroed in every layer that produces it (convolution or linear rows, their biases,
BatchNorm's scale and shift): its output is then exactly zero in training and in evaluation, so
the masked model computes what the model with those channels removed computes, and compaction
removes them through the engine's surgery.

The final count per group comes from the engine's allocator (uniform strategy: the same share of
every group's channels, met on the MACs target, or for a weight sparsity s on keeping 1 - s of the
parameters, by real surgery on a copy); the AGP ramp then
takes that count gradually. A channel's magnitude is the mean, over the layers producing it, of
the L2 norm of its weights."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from secateurs.pruning.allocation import Allocation, Allocator, Target
from secateurs.pruning.campfire.structures import keep_largest
from secateurs.pruning.graph import OUT, ChannelGraph, ChannelGroup
from secateurs.pruning.masks import MASKED_TYPES
from secateurs.pruning.plan import PruningPlan

WEIGHTED = (nn.Conv2d, nn.Linear)


def channel_magnitudes(group: ChannelGroup) -> Tensor:
    """Mean over the group's producing convolutions and linear layers of each channel's L2 norm."""
    total = torch.zeros(group.size, dtype=torch.float64)
    layers = group.layers(OUT, WEIGHTED)
    for member in layers:
        weight = member.module.weight.detach()
        rows = weight[member.indices].reshape(len(member.indices), -1).double().norm(dim=1)
        total.index_add_(0, torch.tensor(member.root_indices), rows.cpu())
    return total / max(len(layers), 1)


class FilterLevel:
    """The channels of one model's prunable groups, removed gradually to a final count."""

    def __init__(
        self,
        model: nn.Module,
        input_size: Sequence[int],
        *,
        target_macs: float | None = None,
        sparsity: float | None = None,
    ) -> None:
        self.graph = ChannelGraph(model, input_size)
        groups = self.graph.prunable_groups
        scores = {group.root: torch.ones(group.size) for group in groups}
        allocator = Allocator(self.graph, scores, Allocation(strategy="uniform"))
        if sparsity is not None:  # a weight sparsity: met on the parameter count
            plan, _ = allocator.meet(Target("params", 1 - sparsity))
        else:
            assert target_macs is not None
            plan, _ = allocator.meet(Target("macs", target_macs))
        self.groups = {group.root: group for group in groups}
        self.final = {root: len(indices) for root, indices in plan.removals.items()}
        self.removed: dict[str, list[int]] = {root: [] for root in self.final}

    def update(self, fraction: float) -> None:
        """Remove ``fraction`` of each group's final count, the smallest channels first; a
        channel removed before stays removed."""
        for root, final in self.final.items():
            group = self.groups[root]
            previous = torch.ones(group.size, dtype=torch.bool)
            previous[self.removed[root]] = False
            keep = keep_largest(channel_magnitudes(group), round(fraction * final), previous)
            self.removed[root] = torch.nonzero(~keep).flatten().tolist()

    def plan(self) -> PruningPlan:
        return PruningPlan({root: list(idx) for root, idx in self.removed.items() if idx})

    def parameter_masks(self) -> list[tuple[nn.Parameter, Tensor]]:
        """(parameter, 0/1 mask broadcasting over it) for every parameter producing a removed
        channel."""
        per_module: dict[nn.Module, set[int]] = {}
        for root, removed in self.removed.items():
            gone = set(removed)
            for member in self.groups[root].layers(OUT, MASKED_TYPES) if gone else []:
                hits = per_module.setdefault(member.module, set())
                hits.update(
                    i for i, r in zip(member.indices, member.root_indices, strict=True) if r in gone
                )
        masks = []
        for module, indices in per_module.items():
            for name in ("weight", "bias"):
                parameter = getattr(module, name, None)
                if not isinstance(parameter, nn.Parameter):
                    continue
                shape = [parameter.shape[0]] + [1] * (parameter.ndim - 1)
                mask = torch.ones(shape, dtype=parameter.dtype, device=parameter.device)
                mask[sorted(indices)] = 0
                masks.append((parameter, mask))
        return masks

    def state(self) -> dict[str, list[int]]:
        return {root: list(indices) for root, indices in self.removed.items()}

    def load(self, removed: dict[str, list[int]]) -> None:
        self.removed = {root: list(removed.get(root, [])) for root in self.final}
