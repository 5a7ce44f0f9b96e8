"""A training and a test split with the normalisation the model reads them with: what a
training run, a fine-tune and an evaluation need to know about data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from secateurs.data.dataset import ImageSet
from secateurs.data.loader import BatchLoader

EVAL_BATCH_SIZE = 256


@dataclass
class LabelledData:
    """``train`` and ``test`` image sets; ``mean``/``std`` per channel, in [0, 1] units."""

    train: ImageSet
    test: ImageSet
    mean: Sequence[float]
    std: Sequence[float]

    def batches(self, image_set: ImageSet, batch_size: int = EVAL_BATCH_SIZE) -> BatchLoader:
        """Un-augmented, normalised batches of ``image_set``, in order."""
        return BatchLoader(image_set, batch_size, self.mean, self.std)

    def sample(self, images: int, batch_size: int, seed: int) -> list:
        """A fixed draw of ``images`` training images as un-augmented batches (scoring, BatchNorm
        recalibration, bias folding)."""
        drawn = self.train.subset(min(images, len(self.train)), seed)
        return list(self.batches(drawn, batch_size))
