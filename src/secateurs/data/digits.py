"""scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes): the demo's data set,
embedded in the library so the demo never downloads anything."""

from __future__ import annotations

import torch

from secateurs.data.dataset import ImageSet

DIGITS_NAME = "digits"


def read_digits(split: str, test_fraction: float = 0.2) -> ImageSet:
    """A fixed stratified split: the same images are in ``test`` every time."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    train_index, test_index = train_test_split(
        range(len(labels)), test_size=test_fraction, stratify=bunch.target, random_state=0
    )
    index = torch.tensor(train_index if split == "train" else test_index)
    return ImageSet(images[index].contiguous(), labels[index], [str(d) for d in range(10)])
