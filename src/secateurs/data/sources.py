"""Find and read a split of a data set from what a user passes as ``--data``."""

from __future__ import annotations

from pathlib import Path

from secateurs.data.cifar_pickle import is_cifar_pickle_folder, read_cifar_pickle
from secateurs.data.dataset import ImageSet
from secateurs.data.digits import DIGITS_NAME, read_digits
from secateurs.data.imagefolder import read_image_folder
from secateurs.errors import SecateursError

SPLIT_NAMES = {"train": ("train",), "test": ("test", "val")}


def default_cifar10_root() -> Path:
    """Where tests and benchmarks look for CIFAR-10 unless told: ``$SECATEURS_CIFAR10`` or
    ``../shared/data/cifar10`` beside the project root."""
    import os

    if "SECATEURS_CIFAR10" in os.environ:
        return Path(os.environ["SECATEURS_CIFAR10"])
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "cifar10"


def resolve_split_root(root: Path, split: str) -> Path:
    """The folder of ``split`` ("train" or "test"; "test" also accepts ``val/``) under ``root``."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if not root.is_dir():
        raise SecateursError(f"no such data folder: {root}")
    for name in SPLIT_NAMES[split]:
        if (root / name).is_dir():
            return root / name
    wanted = " or ".join(f"{root / name}/" for name in SPLIT_NAMES[split])
    raise SecateursError(
        f"{root} has no {split} split: expected {wanted}, or a cifar-10-batches-py folder"
    )


def load_split(data: str | Path, split: str, image_size: int | None = None) -> ImageSet:
    """Read ``split`` of the data set at ``data``: "digits", a ``cifar-10-batches-py`` folder, or an
    ImageFolder root with ``train/`` and ``test/`` (or ``val/``)."""
    if str(data) == DIGITS_NAME:
        return read_digits(split, image_size=image_size)
    root = Path(data).expanduser()
    if root.is_dir() and is_cifar_pickle_folder(root):
        return read_cifar_pickle(root, split)
    return read_image_folder(resolve_split_root(root, split), image_size)
