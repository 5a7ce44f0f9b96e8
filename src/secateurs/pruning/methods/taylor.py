"""First-order Taylor pruning with BatchNorm gates (Molchanov, Mallya, Tyree, Frosio, Kautz;
"Importance Estimation for Neural Network Pruning", CVPR 2019).

Imagine a gate g = 1 multiplying each channel after its BatchNorm. The first-order estimate of the
loss change when the channel is removed is (g dL/dg)^2 per minibatch. Since the BatchNorm output is
y = gamma * x_hat + beta, dL/dg = sum over the batch and positions of y dL/dy
= gamma dL/dgamma + beta dL/dbeta, so no gate module is needed. Channels tied across a residual
stream share one gate: the contributions of all their BatchNorms add up before squaring, and the
score is divided by the number of BatchNorms sharing it (the paper's rule for skip connections).
Without a BatchNorm, the gate sits after the producing layer: dL/dg = sum W dL/dW + b dL/db.
Scores are averaged over the minibatches given. The model is scored in eval mode, so running
statistics are untouched. Ranking is global with no per-layer normalisation, as in the paper.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from secateurs.device import model_device
from secateurs.pruning.channel_scores import gate_gradient, producing_layers, scatter, tied_mean
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods.base import PruningMethod, ScoringData, register_method


@register_method
class Taylor(PruningMethod):
    name = "taylor"
    summary = "first-order Taylor estimate of the loss change, BN gates (Molchanov et al. 2019)"
    needs_data = True

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        model = graph.model
        was_training = model.training
        model.eval()
        device = model_device(model)
        sums = {
            g.root: torch.zeros(g.size, dtype=torch.float64, device=device)
            for g in graph.prunable_groups
        }
        gates = {}
        for group in graph.prunable_groups:
            norms = group.layers("out", (nn.modules.batchnorm._BatchNorm,))
            gates[group.root] = norms or producing_layers(group)
        with torch.enable_grad():
            for images, labels in data.batches:
                model.zero_grad(set_to_none=True)
                data.loss(model(images), labels).backward()
                for group in graph.prunable_groups:
                    gate = torch.zeros(group.size, dtype=torch.float64, device=device)
                    for member in gates[group.root]:
                        gate += scatter(group, member, gate_gradient(member.module))
                    sums[group.root] += gate.pow(2)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        count = len(data.batches)
        return {root: tied_mean(total / count, gates[root]) for root, total in sums.items()}
