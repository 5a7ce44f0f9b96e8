"""A training and a test split with the normalisation the model reads them with: what a
training run, a fine-tune and an evaluation need to know about data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from secateurs.data.dataset import ImageSet
from secateurs.data.loader import BatchLoader

EVAL_BATCH_SIZE = 256
Device = torch.device | str


@dataclass
class LabelledData:
    """``train`` and ``test`` image sets; ``mean``/``std`` per channel, in [0, 1] units."""

    train: ImageSet
    test: ImageSet
    mean: Sequence[float]
    std: Sequence[float]

    def batches(
        self, image_set: ImageSet, batch_size: int = EVAL_BATCH_SIZE, device: Device = "cpu"
    ) -> BatchLoader:
        """Un-augmented, normalised batches of ``image_set``, in order, on ``device``."""
        return BatchLoader(image_set, batch_size, self.mean, self.std).to(device)

    def sample(self, images: int, batch_size: int, seed: int, device: Device = "cpu") -> list:
        """A fixed draw of ``images`` training images as un-augmented batches on ``device`` (the
        model's: scoring, BatchNorm recalibration, bias folding)."""
        drawn = self.train.subset(min(images, len(self.train)), seed)
        return list(self.batches(drawn, batch_size, device))
