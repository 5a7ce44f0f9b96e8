"""Cache of decoded image sets as safetensors files, keyed by the source files' paths, sizes and
modification times, so a second load of CIFAR-10 from JPEG takes a fraction of a second.

The cache directory is ``$SECATEURS_CACHE`` or ``~/.cache/secateurs``. Writes are atomic (a
temporary file renamed into place), so an interrupted decode never leaves a broken entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from secateurs.data.dataset import ImageSet

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


def cache_dir() -> Path:
    return Path(os.environ.get("SECATEURS_CACHE") or Path.home() / ".cache" / "secateurs")


def cache_key(files: list[Path], extra: str) -> str:
    """A digest of every file's path, size and mtime, plus ``extra`` (e.g. the resize setting)."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{extra}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def load_cached(key: str) -> ImageSet | None:
    path = cache_dir() / f"{key}.safetensors"
    if not path.exists():
        return None
    try:
        tensors = load_file(path)
        classes = json.loads(path.with_suffix(".json").read_text())["classes"]
        return ImageSet(tensors["images"], tensors["labels"], classes)
    except (OSError, SafetensorError, KeyError, ValueError, TypeError):
        log.warning("ignoring unreadable cache entry %s", path)
        return None


def store(key: str, image_set: ImageSet) -> None:
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{key}.safetensors"
        meta = path.with_suffix(".json")
        meta_tmp = meta.with_suffix(f".json.{os.getpid()}.tmp")  # ranks may write at once
        meta_tmp.write_text(json.dumps({"classes": image_set.classes}))
        os.replace(meta_tmp, meta)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_file({"images": image_set.images.contiguous(), "labels": image_set.labels}, tmp)
        os.replace(tmp, path)
    except OSError as error:  # a read-only home must not stop training
        log.warning("could not write the image cache in %s: %s", directory, error)
