"""A labelled image set held as one uint8 tensor: the form every loader and cache works with."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from secateurs.errors import SecateursError


@dataclass
class ImageSet:
    """``images``: uint8 (N, C, H, W); ``labels``: int64 (N,); ``classes``: names by label index."""

    images: Tensor
    labels: Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError("images must be a uint8 tensor of shape (N, C, H, W)")
        if self.labels.shape != (len(self.images),):
            raise ValueError("labels must be a 1-D tensor with one label per image")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def input_size(self) -> tuple[int, int, int]:
        """(channels, height, width)."""
        _, channels, height, width = self.images.shape
        return (channels, height, width)

    def subset(self, count: int, seed: int = 0) -> ImageSet:
        """``count`` images drawn without replacement (a fixed draw for a given ``seed``); all of
        them when ``count`` is at least their number."""
        if count < 1:
            raise SecateursError(f"a subset needs at least 1 image, not {count}")
        if count >= len(self):
            return self
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(self), generator=generator)[:count].sort().values
        return ImageSet(self.images[index], self.labels[index], self.classes)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of the pixels, scaled to [0, 1]."""
        sample = self.subset(10_000).images.float().div_(255)
        mean = sample.mean(dim=(0, 2, 3))
        std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return [round(v, 4) for v in mean.tolist()], [round(v, 4) for v in std.tolist()]
