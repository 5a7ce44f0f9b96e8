"""Read an ImageFolder tree (``<split>/<class>/<image>``) into an :class:`ImageSet`.

Without ``image_size`` every image must have the same size (CIFAR); with it, each image is resized
so its shorter side is ``image_size * 256 / 224`` and centre-cropped to ``image_size`` (the usual
ImageNet evaluation transform). Every bad input raises one :class:`SecateursError` naming the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from secateurs.data import cache
from secateurs.data.dataset import ImageSet
from secateurs.errors import SecateursError
from secateurs.progress import progress_bar

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff", ".gif"}


def scan(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """Class names (sorted), image files and their labels under ``root``."""
    if not root.is_dir():
        raise SecateursError(f"no such folder: {root}")
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    if not classes:
        raise SecateursError(f"{root} has no class folders (expected {root}/<class>/<image>)")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_files = sorted(
            path for path in (root / name).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES
        )
        if not class_files:
            raise SecateursError(f"class folder {root / name} holds no images")
        files += class_files
        labels += [label] * len(class_files)
    return classes, files, labels


def _decode(path: Path, image_size: int | None, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if image_size is not None:
                image = _resize_center_crop(image, image_size)
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise SecateursError(f"cannot read image {path}: {error}") from None


def _resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    short = round(size * 256 / 224)
    width, height = image.size
    scale = short / min(width, height)
    image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))))
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def _image_mode(path: Path) -> str:
    try:
        with Image.open(path) as image:
            return "L" if image.mode in ("L", "1", "I;16") else "RGB"
    except (UnidentifiedImageError, OSError) as error:
        raise SecateursError(f"cannot read image {path}: {error}") from None


def read_image_folder(root: Path, image_size: int | None = None) -> ImageSet:
    """Decode every image under ``root`` (cached after the first call)."""
    classes, files, labels = scan(root)
    key = cache.cache_key(files, f"imagefolder|{image_size}")
    cached = cache.load_cached(key)
    if cached is not None:
        return cached
    mode = _image_mode(files[0])
    arrays: list[np.ndarray] = []
    with progress_bar() as bar:
        task = bar.add_task(f"decoding {root}", total=len(files), rate="")
        for path in files:
            array = _decode(path, image_size, mode)
            if arrays and array.shape != arrays[0].shape:
                raise SecateursError(
                    f"images of mixed sizes: {path} is {_describe(array)} but {files[0]} is "
                    f"{_describe(arrays[0])}; pass --image-size N to resize them"
                )
            arrays.append(array)
            bar.advance(task)
    stacked = torch.from_numpy(np.stack(arrays))
    images = stacked.unsqueeze(1) if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
    image_set = ImageSet(images.contiguous(), torch.tensor(labels, dtype=torch.int64), classes)
    cache.store(key, image_set)
    return image_set


def _describe(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"
