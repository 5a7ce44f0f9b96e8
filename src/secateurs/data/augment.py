"""Augmentations applied to a whole batch at once (no per-image Python loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Each image shifted by an independent offset in [-padding, padding] pixels (zero fill):
    the same as padding by ``padding`` and cropping the original size at a random place."""
    if padding <= 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    rows = (dy[:, None] + torch.arange(height))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(width))[:, None, :]  # (B, 1, W)
    crops = padded.permute(0, 2, 3, 1)[torch.arange(batch)[:, None, None], rows, cols]
    return crops.permute(0, 3, 1, 2)


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Each image mirrored left-right with probability 1/2."""
    flip = torch.rand(len(images), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)
