"""SG-CNN's data-driven importance: first-order Taylor importance of each connection,
V[i, c] = sum over the kernel and over a few training batches of |W[i, c] * dL/dW[i, c]| (the
loss change a first-order expansion predicts when connection (i, c) is removed), instead of the
weights' magnitude alone.

The batches are the next ones of the run's own training loader (its order is a function of the
seed and the epoch, so reading them changes nothing else); the model runs in eval mode, so
BatchNorm's statistics are untouched; under DDP the sums are added over the ranks, so every rank
groups alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from secateurs.train.distributed import DistributedContext

DEFAULT_BATCHES = 8


def taylor_vectors(
    model: nn.Module,
    layers: Mapping[str, nn.Conv2d | nn.Linear],
    batches: Iterable[tuple[Tensor, Tensor]],
    count: int = DEFAULT_BATCHES,
    context: DistributedContext | None = None,
) -> dict[str, Tensor]:
    """{layer: V (C_out, C_in), float64} over the first ``count`` of ``batches``."""
    weights = [conv.weight for conv in layers.values()]
    totals = [torch.zeros(w.shape[:2], dtype=torch.float64, device=w.device) for w in weights]
    was_training = model.training
    model.eval()
    try:
        for index, (images, labels) in enumerate(batches):
            if index >= count:
                break
            with torch.enable_grad():
                loss = F.cross_entropy(model(images), labels)
                gradients = torch.autograd.grad(loss, weights)
            for total, weight, gradient in zip(totals, weights, gradients, strict=True):
                change = (weight.detach() * gradient).abs()
                if change.dim() > 2:  # a convolution: summed over its kernel; a linear layer
                    change = change.flatten(2).sum(2)  # (--linear) has one weight a connection
                total += change.double()
    finally:
        model.train(was_training)
    if context is not None and context.enabled:
        for total in totals:
            torch.distributed.all_reduce(total)
    return {name: total.cpu() for name, total in zip(layers, totals, strict=True)}
