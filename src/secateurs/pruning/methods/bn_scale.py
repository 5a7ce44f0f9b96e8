"""BatchNorm-scale pruning (Liu, Li, Shen, Huang, Yan, Zhang; "Learning Efficient Convolutional
Networks through Network Slimming", ICCV 2017).

A channel's importance is |gamma| of the BatchNorm that follows its producer; tied channels (a
residual stream) take the mean |gamma| over every BatchNorm in the group (the tied-group rule
shared by every method, :func:`~secateurs.pruning.methods.base.tied_mean`). The paper trains
with an L1 penalty on gamma first; this scores any trained model as it is. A group with no
BatchNorm (a linear hidden layer, say) falls back to the L1 norm of its producing weights,
normalised to the same mean as the BatchNorm scores, so that it can still be ranked globally.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from secateurs.device import model_device
from secateurs.pruning.channel_scores import scatter, tied_mean
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods.base import PruningMethod, ScoringData, register_method
from secateurs.pruning.methods.norm import filter_norms


@register_method
class BatchNormScale(PruningMethod):
    name = "bn_scale"
    summary = "|gamma| of each channel's BatchNorm (network slimming, Liu et al. 2017)"

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        scores, missing = {}, []
        device = model_device(graph.model)
        for group in graph.prunable_groups:
            norms = group.layers("out", (nn.modules.batchnorm._BatchNorm,))
            if not norms:
                missing.append(group.root)
                continue
            total = torch.zeros(group.size, dtype=torch.float64, device=device)
            for member in norms:
                total += scatter(group, member, member.module.weight.detach().abs())
            scores[group.root] = tied_mean(total, norms)
        if missing:
            reference = (
                torch.cat(list(scores.values())).mean()
                if scores
                else torch.tensor(1.0, device=device)
            )
            l1 = filter_norms(graph, power=1)
            for root in missing:
                scores[root] = l1[root] / l1[root].mean().clamp_min(1e-12) * reference
        return scores
