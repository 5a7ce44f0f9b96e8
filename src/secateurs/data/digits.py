"""scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes): the demo's data set,
embedded in the library so the demo never downloads anything."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from secateurs.data.dataset import ImageSet

DIGITS_NAME = "digits"


def read_digits(split: str, test_fraction: float = 0.2, image_size: int | None = None) -> ImageSet:
    """A fixed stratified split: the same images are in ``test`` every time; ``image_size``
    scales the 8x8 glyphs up (bilinear), e.g. to 32x32, where a CNN's cost is its convolutions'
    and not its per-operator overhead."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    train_index, test_index = train_test_split(
        range(len(labels)), test_size=test_fraction, stratify=bunch.target, random_state=0
    )
    index = torch.tensor(train_index if split == "train" else test_index)
    chosen = images[index]
    if image_size is not None and image_size != chosen.shape[-1]:
        scaled = F.interpolate(chosen.float(), size=(image_size, image_size), mode="bilinear")
        chosen = scaled.round().clamp(0, 255).to(torch.uint8)
    return ImageSet(chosen.contiguous(), labels[index], [str(d) for d in range(10)])
