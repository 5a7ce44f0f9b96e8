"""Per-layer pruned ratios from a sensitivity scan, as the SPP paper and Li et al. (2017) chose
them: each layer alone loses its smallest-L1 groups at ratios 0.1, 0.2, ..., 0.9 (one shot, no
retraining), the accuracy on a fixed draw of training images is measured, and the layer gets the
largest ratio that costs at most ``max_drop`` top-1 points. Sensitive layers are pruned less."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from secateurs.pruning.spp.groups import WeightGroups

SCAN_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@torch.no_grad()
def _top1(model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]]) -> float:
    hits = total = 0
    for images, labels in batches:
        hits += int((model(images).argmax(1) == labels).sum())
        total += len(labels)
    return 100.0 * hits / max(total, 1)


def sensitivity_scan(
    model: nn.Module,
    layers: Sequence[WeightGroups],
    batches: Sequence[tuple[Tensor, Tensor]],
    ratios: Sequence[float] = SCAN_RATIOS,
) -> tuple[float, dict[str, dict[str, float]]]:
    """The model's top-1 on ``batches`` and, per layer and ratio, its top-1 with only that layer
    pruned (the model is left as it was)."""
    was_training = model.training
    model.eval()
    base = _top1(model, batches)
    scan: dict[str, dict[str, float]] = {}
    for layer in layers:
        order = torch.argsort(layer.scores(), stable=True)
        scan[layer.name] = {}
        for ratio in ratios:
            keep = torch.ones(layer.size, dtype=torch.bool)
            keep[order[: math.ceil(ratio * layer.size)]] = False
            masks = layer.masks(keep)
            saved = [parameter.detach().clone() for parameter, _ in masks]
            with torch.no_grad():
                for parameter, mask in masks:
                    parameter.mul_(mask)
                scan[layer.name][f"{ratio:g}"] = _top1(model, batches)
                for (parameter, _), value in zip(masks, saved, strict=True):
                    parameter.copy_(value)
    model.train(was_training)
    return base, scan


def ratios_from_scan(
    base: float, scan: dict[str, dict[str, float]], max_drop: float
) -> dict[str, float]:
    """Each layer's largest scanned ratio within ``max_drop`` points of ``base`` (0 if none)."""
    chosen = {}
    for name, accuracies in scan.items():
        fine = [float(r) for r, top1 in accuracies.items() if top1 >= base - max_drop]
        chosen[name] = max(fine, default=0.0)
    return chosen
