"""Re-estimate BatchNorm running statistics after pruning.

Removing channels changes what every later BatchNorm sees: a layer that lost some of its inputs
produces outputs of a different mean and variance than the ones its running statistics were
collected on, and the error compounds through the network. That mismatch, more than the lost
channels themselves, is much of why one-shot accuracy after pruning is low. Re-estimating the
statistics on a few training batches (no gradient, no weight changes) removes it: the same
"recalibration" used after quantisation and in network-slimming style pipelines.

Only BatchNorm layers run in training mode during the passes; everything else (dropout in
particular) stays in evaluation mode, so the statistics are those the evaluated network feeds
its BatchNorms. The statistics are the exact average over all the given batches (cumulative
moving average, ``momentum=None``), not an exponential average biased to the last batch. All
BatchNorms are re-estimated in the same passes, so a later one sees earlier ones normalising
each batch with that batch's own statistics (as ``torch.optim.swa_utils.update_bn`` does).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Reset and re-estimate the running mean and variance of every BatchNorm of ``model`` from
    ``batches`` of (already normalised) input images. Weights are untouched; the model's
    training mode and every BatchNorm's momentum are restored afterwards. Returns the number of
    batches used (0: nothing was changed)."""
    norms = [m for m in model.modules() if isinstance(m, BATCHNORM_TYPES) and m.track_running_stats]
    batches = list(batches)
    if not norms or not batches:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    try:
        model.eval()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over all batches
            norm.train()
        with torch.no_grad():
            for images in batches:
                model(images)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.train(was_training)
    return len(batches)
