"""Batches from an in-memory :class:`ImageSet`: shuffled by a distributed sampler, augmented and
normalised as whole tensors.

Everything random is a function of (seed, epoch, rank), so the batches of epoch ``e`` are the same
whether or not the run was interrupted before it: resuming needs no loader state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from secateurs.data.augment import (
    Augmentation,
    alternating_flip,
    cutout,
    random_crop,
    random_flip,
)
from secateurs.data.dataset import ImageSet
from secateurs.errors import SecateursError


class _Indices:
    """The minimal "dataset" a sampler needs: a length."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length


class BatchLoader:
    """Iterate (images, labels) batches; images are float, normalised with ``mean``/``std``.

    With an ``augment`` (training) it shuffles, drops the last partial batch and augments: random
    crop with ``augment.padding`` pixels; left-right flips when ``augment.flip``, at random or,
    with ``augment.alternate_flip``, each image in every other epoch; and, when
    ``augment.cutout`` > 0, a square of that side zeroed after normalisation. Without one
    (evaluation) it reads every image once, in order. ``shard = (rank, world_size)``: under DDP
    each rank reads its own ``1/world_size`` share. Batches are prepared on the CPU (the images
    live there) and moved to the device :meth:`to` names, the model's.
    """

    def __init__(
        self,
        image_set: ImageSet,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        augment: Augmentation | None = None,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
        channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise SecateursError(f"batch size must be at least 1, not {batch_size}")
        self.image_set = image_set
        self.batch_size = batch_size
        self.device = torch.device("cpu")  # where batches go: :meth:`to`
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std).view(1, -1, 1, 1) * 255
        self.augment = augment
        self.train = augment is not None
        # which images alternating flips mirror in even epochs: a fixed draw per image
        self.flipped_first = (
            torch.rand(len(image_set), generator=torch.Generator().manual_seed(seed)) < 0.5
            if augment is not None and augment.flip and augment.alternate_flip
            else None
        )
        rank, world_size = shard
        self.seed = seed
        self.rank = rank
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.sampler = DistributedSampler(
            _Indices(len(image_set)),  # type: ignore[arg-type]
            num_replicas=world_size,
            rank=rank,
            shuffle=self.train,
            seed=seed,
            drop_last=self.train,
        )
        self.epoch = 0

    def to(self, device: torch.device | str) -> BatchLoader:
        """Yield batches on ``device`` (the model's) from now on; returns the loader."""
        self.device = torch.device(device)
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        count = len(self.sampler)
        return count // self.batch_size if self.train else -(-count // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for _, images, labels in self.indexed():
            yield images, labels

    def indexed(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Batches as (index, images, labels): ``index`` holds each image's place in the set."""
        indices = torch.tensor(list(self.sampler), dtype=torch.int64)
        generator = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + self.epoch) * 1_009 + self.rank
        )
        for batch_index in range(len(self)):
            index = indices[batch_index * self.batch_size : (batch_index + 1) * self.batch_size]
            images = self.image_set.images[index].float()
            augment = self.augment
            if augment is not None:
                images = random_crop(images, augment.padding, generator)
                if self.flipped_first is not None:
                    images = alternating_flip(images, self.flipped_first[index], self.epoch)
                elif augment.flip:
                    images = random_flip(images, generator)
            images = (images - self.mean) / self.std
            if augment is not None and augment.cutout > 0:
                images = cutout(images, augment.cutout, generator)
            # Always the layout asked for: the batched crop leaves NHWC strides, which would
            # silently switch convolutions to channels-last kernels (see decisions.md).
            images = images.contiguous(memory_format=self.memory_format)
            labels = self.image_set.labels[index]
            if self.device.type != "cpu":
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
            yield index, images, labels
