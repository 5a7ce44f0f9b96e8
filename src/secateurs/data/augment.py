"""Augmentations applied to a whole batch at once (no per-image Python loop)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Augmentation:
    """How training batches are augmented: a random crop shifted by up to ``padding`` pixels,
    left-right flips (at random, or each image in every other epoch with ``alternate_flip``),
    and a zeroed square of side ``cutout`` (0: none)."""

    padding: int = 4
    flip: bool = True
    alternate_flip: bool = False
    cutout: int = 0


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
    return mirror(images, torch.rand(len(images), generator=generator) < 0.5)


def mirror(images: Tensor, which: Tensor) -> Tensor:
    """The images whose entry in the boolean vector ``which`` is true, mirrored left-right."""
    return torch.where(which[:, None, None, None], images.flip(3), images)


def alternating_flip(images: Tensor, flipped_first: Tensor, epoch: int) -> Tensor:
    """Each image mirrored in every other epoch: in even epochs (0, 2, ...) the images whose
    ``flipped_first`` is true, in odd epochs the others. Over any two consecutive epochs every
    image is seen both ways, where random flips show a quarter of them one way only
    (the "alternating flip" of Jordan 2024, *94% on CIFAR-10 in 3.29 seconds*)."""
    return mirror(images, flipped_first if epoch % 2 == 0 else ~flipped_first)


def cutout(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Each image with one ``size`` x ``size`` square set to zero, centred at a uniformly random
    pixel and clipped at the border (DeVries and Taylor 2017). Applied to normalised images,
    zero is the data set's mean colour."""
    if size <= 0:
        return images
    batch, _, height, width = images.shape
    top = torch.randint(0, height, (batch,), generator=generator) - size // 2
    left = torch.randint(0, width, (batch,), generator=generator) - size // 2
    rows = torch.arange(height)[None, :] - top[:, None]  # (B, H): offset into the square
    cols = torch.arange(width)[None, :] - left[:, None]
    inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    return images.masked_fill(inside[:, None], 0.0)
