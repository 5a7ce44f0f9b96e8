"""Filter-norm pruning (Li, Kadav, Durdanovic, Samet, Graf; "Pruning Filters for Efficient
ConvNets", ICLR 2017).

A channel's importance is the norm of the filter that produces it: sum |W[c]| (L1, the paper's
choice) or ||W[c]||_2 (L2). Where k layers produce the same channel (a residual stream), the
group's score is on one producer's scale (the tied-group rule every method shares): the mean of
the producers' L1 norms, or the root of the mean of their squared L2 norms. The paper prunes a
fixed fraction per layer: use ``--strategy uniform`` to reproduce it; with the global strategy,
scores are divided by their group's mean so layers of different fan-in compare.
"""

from __future__ import annotations

import torch
from torch import Tensor

from secateurs.device import model_device
from secateurs.pruning.channel_scores import producing_layers, scatter, tied_mean
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods.base import PruningMethod, ScoringData, register_method


def filter_norms(graph: ChannelGraph, power: int) -> dict[str, Tensor]:
    """The mean over producers of sum |W[c]|^power, per channel of each prunable group."""
    scores = {}
    for group in graph.prunable_groups:
        total = torch.zeros(group.size, dtype=torch.float64, device=model_device(graph.model))
        producers = producing_layers(group)
        for member in producers:
            weight = member.module.weight.detach()
            per_channel = weight.abs().pow(power).flatten(1).sum(1)
            total += scatter(group, member, per_channel)
        scores[group.root] = tied_mean(total, producers)
    return scores


class FilterNorm(PruningMethod):
    """The norm of each channel's producing filters: L1 (``power`` 1) or L2 (``power`` 2)."""

    power = 1
    normalize = "mean"

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        totals = filter_norms(graph, power=self.power)
        if self.power == 2:
            return {root: total.sqrt() for root, total in totals.items()}
        return totals


@register_method
class L1Norm(FilterNorm):
    name = "l1"
    summary = "L1 norm of the filters producing each channel (Li et al. 2017)"


@register_method
class L2Norm(FilterNorm):
    name = "l2"
    summary = "L2 norm of the filters producing each channel"
    power = 2
