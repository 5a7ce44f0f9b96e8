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

GRAYSCALE_MODES = {"L", "1", "LA"}
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I"}  # 16-bit grayscale PNGs open as these
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff", ".gif"}


def scan(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """Class names (sorted), image files and their labels under ``root``."""
    if not root.is_dir():
        raise SecateursError(f"no such folder: {root}")
    # hidden entries (.ipynb_checkpoints, macOS's ._name.jpg) are not classes or images
    classes = sorted(e.name for e in root.iterdir() if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise SecateursError(f"{root} has no class folders (expected {root}/<class>/<image>)")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_files = sorted(
            path
            for path in (root / name).iterdir()
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
        )
        if not class_files:
            raise SecateursError(f"class folder {root / name} holds no images")
        files += class_files
        labels += [label] * len(class_files)
    return classes, files, labels


def _decode(path: Path, image_size: int | None) -> np.ndarray:
    """(H, W) for a grayscale file, (H, W, 3) for anything else."""
    try:
        with Image.open(path) as image:
            if image.mode in SIXTEEN_BIT_MODES:  # PIL's convert("L") would clip, not scale
                pixels = np.asarray(image).astype(np.int64) // 256
                image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "L")
            image = image.convert("L" if image.mode in GRAYSCALE_MODES else "RGB")
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


def cache_tag(image_size: int | None) -> str:
    """What besides the files keys a decoded set; v2: grayscale files in colour sets, 16-bit
    files scaled."""
    return f"imagefolder-v2|{image_size}"


def read_image_folder(root: Path, image_size: int | None = None) -> ImageSet:
    """Decode every image under ``root`` (cached after the first call)."""
    classes, files, labels = scan(root)
    key = cache.cache_key(files, cache_tag(image_size))
    cached = cache.load_cached(key)
    if cached is not None:
        return cached
    arrays: list[np.ndarray] = []
    with progress_bar() as bar:
        task = bar.add_task(f"decoding {root}", total=len(files), rate="")
        for path in files:
            array = _decode(path, image_size)
            if arrays and array.shape[:2] != arrays[0].shape[:2]:
                raise SecateursError(
                    f"images of mixed sizes: {path} is {_describe(array)} but {files[0]} is "
                    f"{_describe(arrays[0])}; pass --image-size N to resize them"
                )
            arrays.append(array)
            bar.advance(task)
    if any(array.ndim == 3 for array in arrays):  # a colour set: grayscale files become RGB
        arrays = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    stacked = torch.from_numpy(np.stack(arrays))
    images = stacked.unsqueeze(1) if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
    image_set = ImageSet(images.contiguous(), torch.tensor(labels, dtype=torch.int64), classes)
    cache.store(key, image_set)
    return image_set


def _describe(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"
