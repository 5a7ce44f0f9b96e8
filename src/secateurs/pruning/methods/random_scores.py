"""Random pruning: the baseline every criterion must beat at the same budget."""

from __future__ import annotations

import torch
from torch import Tensor

from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods.base import PruningMethod, ScoringData, register_method


@register_method
class RandomScores(PruningMethod):
    name = "random"
    summary = "uniformly random channel scores (the control every method must beat)"

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        generator = torch.Generator().manual_seed(self.seed)
        return {
            group.root: torch.rand(
                group.size, generator=generator, dtype=torch.float64, device=generator.device
            )
            for group in graph.prunable_groups
        }
