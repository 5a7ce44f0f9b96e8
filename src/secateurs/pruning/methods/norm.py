"""Filter-norm pruning (Li, Kadav, Durdanovic, Samet, Graf; "Pruning Filters for Efficient
ConvNets", ICLR 2017).

A channel's importance is the norm of the filter that produces it: sum |W[c]| (L1, the paper's
choice) or ||W[c]||_2 (L2). Where several layers produce the same channel (a residual stream), the
norms of all producers add up (L1) or combine in quadrature (L2). The paper prunes a fixed fraction
per layer: use ``--strategy uniform`` to reproduce it; with the global strategy, scores are divided
by their group's mean so layers of different fan-in compare.
"""

from __future__ import annotations

import torch
from torch import Tensor

from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods.base import (
    PruningMethod,
    ScoringData,
    producing_layers,
    register_method,
    scatter,
)


def filter_norms(graph: ChannelGraph, power: int) -> dict[str, Tensor]:
    """sum over producers of sum |W[c]|^power, per channel of each prunable group."""
    scores = {}
    for group in graph.prunable_groups:
        total = torch.zeros(group.size, dtype=torch.float64)
        for member in producing_layers(group):
            weight = member.module.weight.detach()
            per_channel = weight.abs().pow(power).flatten(1).sum(1)
            total += scatter(group, member, per_channel)
        scores[group.root] = total
    return scores


@register_method
class L1Norm(PruningMethod):
    name = "l1"
    summary = "L1 norm of the filters producing each channel (Li et al. 2017)"
    normalize = "mean"

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        return filter_norms(graph, power=1)


@register_method
class L2Norm(PruningMethod):
    name = "l2"
    summary = "L2 norm of the filters producing each channel"
    normalize = "mean"

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        return {root: total.sqrt() for root, total in filter_norms(graph, power=2).items()}
