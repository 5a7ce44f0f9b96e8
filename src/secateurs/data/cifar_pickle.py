"""Read the original CIFAR-10 release (the ``cifar-10-batches-py`` folder of pickled batches).

The batches are pickles, so they are read with an unpickler that only builds plain containers and
numpy arrays: a file that tries to construct anything else is refused, never executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from secateurs.data.dataset import ImageSet
from secateurs.errors import SecateursError

TRAIN_BATCHES = [f"data_batch_{index}" for index in range(1, 6)]
TEST_BATCHES = ["test_batch"]
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("_codecs", "encode"),
}


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_batch(path: Path) -> dict:
    if not path.is_file():
        raise SecateursError(f"missing CIFAR-10 batch file: {path}")
    try:
        with path.open("rb") as file:
            return _DataOnlyUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise SecateursError(f"not a CIFAR-10 batch file: {path} ({error})") from None


def is_cifar_pickle_folder(root: Path) -> bool:
    return (root / "data_batch_1").is_file() or (root / "test_batch").is_file()


def read_cifar_pickle(root: Path, split: str) -> ImageSet:
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    images, labels = [], []
    for name in names:
        batch = _load_batch(root / name)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            batch_labels = [int(label) for label in batch[b"labels"]]
        except (KeyError, ValueError, TypeError) as error:
            raise SecateursError(f"not a CIFAR-10 batch file: {root / name} ({error})") from None
        if len(batch_labels) != len(data):
            raise SecateursError(
                f"not a CIFAR-10 batch file: {root / name} holds {len(data)} images "
                f"but {len(batch_labels)} labels"
            )
        images.append(data)
        labels += batch_labels
    classes = _class_names(root / "batches.meta")
    if labels and not 0 <= min(labels) <= max(labels) < len(classes):
        raise SecateursError(
            f"{root} has labels from {min(labels)} to {max(labels)}, but {len(classes)} classes"
        )
    return ImageSet(
        torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64), classes
    )


def _class_names(meta: Path) -> list[str]:
    """The ``label_names`` of ``batches.meta``; without the file, the classes are numbered."""
    if not meta.is_file():
        return [str(index) for index in range(10)]
    content = _load_batch(meta)
    try:
        return [name.decode() for name in content[b"label_names"]]
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise SecateursError(f"{meta} has no list of label_names") from None
