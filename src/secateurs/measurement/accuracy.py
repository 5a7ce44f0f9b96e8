"""Top-1 / top-5 accuracy and mean loss of a classifier over a loader."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> dict[str, float]:
    """``top1`` and ``top5`` in percent, ``loss`` (mean cross-entropy) and ``n`` (images).

    The model is put in eval mode for the pass and returned to its previous mode after.
    """
    was_training = model.training
    model.eval()
    correct1 = correct5 = 0
    loss_sum = 0.0
    count = 0
    for images, labels in batches:
        logits = model(images)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top == labels[:, None]
        correct1 += hits[:, 0].sum().item()
        correct5 += hits.any(dim=1).sum().item()
        count += len(labels)
    model.train(was_training)
    if count == 0:
        return {"top1": 0.0, "top5": 0.0, "loss": float("nan"), "n": 0}
    return {
        "top1": 100.0 * correct1 / count,
        "top5": 100.0 * correct5 / count,
        "loss": loss_sum / count,
        "n": count,
    }
