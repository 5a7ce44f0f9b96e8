"""Checkpoints: written atomically (temporary file, then rename), read with ``weights_only=True``.

A checkpoint holds only tensors and plain Python values, so it loads without unpickling code; a
file that is anything else is refused with one clear line, never executed.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from secateurs.errors import SecateursError, first_line


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SecateursError(f"no checkpoint to resume from: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        reason = first_line(error, 160)
        raise SecateursError(
            f"{path} is not a secateurs checkpoint (refused to unpickle it: {reason})"
        ) from None


# the random states of numpy and Python as JSON-able lists (a checkpoint holds plain values)


def numpy_state() -> list:
    name, keys, position, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), position, has_gauss, cached]


def set_numpy_state(state: list) -> None:
    name, keys, position, has_gauss, cached = state
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


def python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def set_python_state(state: list) -> None:
    version, internal, gauss = state
    random.setstate((version, tuple(internal), gauss))
