"""Data: labelled image sets in memory, read from CIFAR-10 (pickle or ImageFolder), any ImageFolder
tree, or scikit-learn's digits; batches augmented on whole tensors."""

from secateurs.data.dataset import ImageSet
from secateurs.data.loader import BatchLoader
from secateurs.data.sources import load_split, resolve_split_root

__all__ = ["BatchLoader", "ImageSet", "load_split", "resolve_split_root"]
