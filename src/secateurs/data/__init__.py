"""Data: labelled image sets in memory, read from CIFAR-10 (pickle or ImageFolder), any ImageFolder
tree, or scikit-learn's digits; batches augmented on whole tensors."""

from secateurs.data.augment import Augmentation
from secateurs.data.dataset import ImageSet
from secateurs.data.labelled import LabelledData
from secateurs.data.loader import BatchLoader
from secateurs.data.sources import load_split, resolve_split_root

__all__ = [
    "Augmentation",
    "BatchLoader",
    "ImageSet",
    "LabelledData",
    "load_split",
    "resolve_split_root",
]
