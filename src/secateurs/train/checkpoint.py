"""Checkpoints: written atomically (temporary file, then rename), read with ``weights_only=True``.

A checkpoint holds only tensors and plain Python values, so it loads without unpickling code; a
file that is anything else is refused with one clear line, never executed.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

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
