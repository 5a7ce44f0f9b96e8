"""Data: ImageFolder and CIFAR pickle readers, the decode cache, digits, augmentation, batches."""

from __future__ import annotations

import os
import pickle
import re
import shlex
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from secateurs.data import Augmentation, BatchLoader, ImageSet, cache, imagefolder, load_split
from secateurs.data.augment import alternating_flip, cutout, random_crop, random_flip
from secateurs.data.digits import read_digits
from secateurs.errors import SecateursError

CLASSES = ["cat", "ant", "bee"]  # written unsorted: the label order must be the sorted one


def write_image(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_tree(
    root: Path,
    splits: tuple[str, ...] = ("train", "test"),
    per_class: int = 4,
    size: tuple[int, int] = (8, 8),  # (height, width)
    seed: int = 0,
) -> dict[str, dict[str, list[np.ndarray]]]:
    """``root/<split>/<class>/img<i>.png`` with random RGB pixels; returns the arrays written."""
    rng = np.random.default_rng(seed)
    written: dict[str, dict[str, list[np.ndarray]]] = {}
    for split in splits:
        written[split] = {}
        for name in CLASSES:
            arrays = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(per_class)]
            for index, array in enumerate(arrays):
                write_image(root / split / name / f"img{index}.png", array)
            written[split][name] = arrays
    return written


class Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


# -- ImageFolder ---------------------------------------------------------------------------------
def test_image_folder_shapes_labels_classes_and_pixels(tmp_path: Path) -> None:
    written = make_tree(tmp_path)
    for split in ("train", "test"):
        image_set = load_split(tmp_path, split)
        assert image_set.classes == ["ant", "bee", "cat"]
        assert image_set.images.shape == (12, 3, 8, 8)
        assert image_set.images.dtype == torch.uint8
        assert image_set.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
        # PNG is lossless: every pixel comes back, in (class, file name) order, as (C, H, W)
        expected = np.stack([a for name in sorted(CLASSES) for a in written[split][name]])
        assert torch.equal(image_set.images, torch.from_numpy(expected).permute(0, 3, 1, 2))


def test_image_folder_reads_val_as_test_and_grayscale_as_one_channel(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    write_image(tmp_path / "train" / "a" / "0.png", pixels)
    write_image(tmp_path / "val" / "a" / "0.png", pixels)
    image_set = load_split(tmp_path, "test")
    assert image_set.images.shape == (1, 1, 5, 6)
    assert torch.equal(image_set.images[0, 0], torch.from_numpy(pixels))


def test_image_folder_skips_hidden_folders_and_files(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=2)
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "train" / CLASSES[0] / "._img0.png").write_bytes(b"\x00\x05 resource fork")
    image_set = load_split(tmp_path, "train")
    assert image_set.classes == sorted(CLASSES)
    assert len(image_set) == 2 * len(CLASSES)


def test_image_folder_mixing_grayscale_and_colour_is_colour(tmp_path: Path) -> None:
    # the first file (sorted) is grayscale: the set is still colour, the gray image in 3 channels
    gray = np.full((4, 4), 200, dtype=np.uint8)
    colour = np.zeros((4, 4, 3), dtype=np.uint8)
    colour[..., 0] = 255
    write_image(tmp_path / "train" / "a" / "0.png", gray)
    write_image(tmp_path / "train" / "a" / "1.png", colour)
    image_set = load_split(tmp_path, "train")
    assert image_set.images.shape == (2, 3, 4, 4)
    assert torch.equal(image_set.images[0], torch.full((3, 4, 4), 200, dtype=torch.uint8))
    assert image_set.images[1, 0].eq(255).all() and image_set.images[1, 1:].eq(0).all()


def test_image_folder_scales_16_bit_images_to_8_bits(tmp_path: Path) -> None:
    values = np.array([[0, 255, 256, 32768], [40000, 65535, 1000, 512]], dtype=np.uint16)
    write_image(tmp_path / "train" / "a" / "0.png", values)
    image_set = load_split(tmp_path, "train")
    assert image_set.images.shape == (1, 1, 2, 4)
    assert image_set.images[0, 0].tolist() == [[0, 0, 1, 128], [156, 255, 3, 2]]


def test_cache_entry_is_written_and_read_back(tmp_path: Path, monkeypatch) -> None:
    make_tree(tmp_path)
    first = load_split(tmp_path, "train")
    files = imagefolder.scan(tmp_path / "train")[1]
    key = cache.cache_key(files, imagefolder.cache_tag(None))
    entry = Path(os.environ["SECATEURS_CACHE"]) / f"{key}.safetensors"
    assert entry.is_file() and entry.with_suffix(".json").is_file()
    assert not list(entry.parent.glob("*.tmp"))  # temporary files were renamed into place
    assert cache.cache_dir() == Path(os.environ["SECATEURS_CACHE"])

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image although the cache holds the set")

    monkeypatch.setattr(imagefolder, "_decode", no_decoding)
    second = load_split(tmp_path, "train")
    assert torch.equal(second.images, first.images)
    assert torch.equal(second.labels, first.labels)
    assert second.classes == first.classes


def test_cache_entry_without_images_is_ignored(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    make_tree(tmp_path)
    first = load_split(tmp_path, "train")
    files = imagefolder.scan(tmp_path / "train")[1]
    key = cache.cache_key(files, imagefolder.cache_tag(None))
    entry = Path(os.environ["SECATEURS_CACHE"]) / f"{key}.safetensors"
    save_file({"labels": first.labels}, entry)  # no images
    second = load_split(tmp_path, "train")  # decoded again, not a KeyError
    assert torch.equal(second.images, first.images)


def test_cache_key_changes_when_a_file_changes(tmp_path: Path) -> None:
    make_tree(tmp_path)
    first = load_split(tmp_path, "train")
    files = imagefolder.scan(tmp_path / "train")[1]
    old_key = cache.cache_key(files, "imagefolder|None")

    changed = tmp_path / "train" / "bee" / "img2.png"  # image 6 (bee is label 1)
    new_pixels = np.full((8, 8, 3), 7, dtype=np.uint8)
    write_image(changed, new_pixels)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache.cache_key(files, "imagefolder|None") != old_key

    second = load_split(tmp_path, "train")
    assert torch.equal(second.images[6], torch.full((3, 8, 8), 7, dtype=torch.uint8))
    assert not torch.equal(first.images[6], second.images[6])
    assert torch.equal(second.images[:6], first.images[:6])

    # the modification time alone changes the key (same bytes, touched file)
    key = cache.cache_key(files, "imagefolder|None")
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    assert cache.cache_key(files, "imagefolder|None") != key
    # and so does the resize setting
    assert cache.cache_key(files, "imagefolder|8") != cache.cache_key(files, "imagefolder|None")


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SecateursError, match=re.escape(str(missing))):
        load_split(missing, "train")


def test_missing_test_split(tmp_path: Path) -> None:
    make_tree(tmp_path, splits=("train",))
    with pytest.raises(SecateursError) as error:
        load_split(tmp_path, "test")
    assert str(tmp_path / "test") in str(error.value)
    assert "test split" in str(error.value)


def test_empty_class_folder(tmp_path: Path) -> None:
    make_tree(tmp_path)
    empty = tmp_path / "train" / "dog"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image suffix, so ignored")
    with pytest.raises(SecateursError, match=re.escape(f"class folder {empty} holds no images")):
        load_split(tmp_path, "train")


def test_no_class_folders(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(SecateursError, match="has no class folders"):
        load_split(tmp_path, "train")


@pytest.mark.parametrize("name", ["x.jpg", "a_first.jpg"])  # after, and before, the valid images
def test_corrupt_image_file(tmp_path: Path, name: str) -> None:
    make_tree(tmp_path)
    bad = tmp_path / "train" / "bee" / name
    bad.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SecateursError, match=re.escape(f"cannot read image {bad}")):
        load_split(tmp_path, "train")


def test_text_file_with_image_suffix(tmp_path: Path) -> None:
    make_tree(tmp_path)
    bad = tmp_path / "train" / "cat" / "readme.png"
    bad.write_text("hello, I am not a picture\n")
    with pytest.raises(SecateursError, match=re.escape(f"cannot read image {bad}")):
        load_split(tmp_path, "train")


def test_truncated_jpeg(tmp_path: Path) -> None:
    make_tree(tmp_path)
    bad = tmp_path / "train" / "cat" / "truncated.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(SecateursError, match=re.escape(f"cannot read image {bad}")):
        load_split(tmp_path, "train")


def test_mixed_image_sizes(tmp_path: Path) -> None:
    make_tree(tmp_path)
    odd = tmp_path / "train" / "cat" / "wide.png"
    write_image(odd, np.zeros((8, 12, 3), dtype=np.uint8))
    with pytest.raises(SecateursError) as error:
        load_split(tmp_path, "train")
    message = str(error.value)
    assert str(odd) in message
    assert "12x8" in message  # width x height
    assert "--image-size" in message


def test_image_size_resizes_mixed_sizes(tmp_path: Path) -> None:
    make_tree(tmp_path)
    write_image(tmp_path / "train" / "cat" / "wide.png", np.full((8, 12, 3), 200, np.uint8))
    write_image(tmp_path / "train" / "cat" / "big.png", np.full((20, 20, 3), 50, np.uint8))
    image_set = load_split(tmp_path, "train", image_size=6)
    assert image_set.images.shape == (14, 3, 6, 6)
    assert image_set.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 6
    # cat's files in order: big.png, img0..3.png, wide.png; flat images stay flat when resized
    assert torch.equal(image_set.images[8], torch.full((3, 6, 6), 50, dtype=torch.uint8))
    assert torch.equal(image_set.images[13], torch.full((3, 6, 6), 200, dtype=torch.uint8))


# -- CIFAR-10 pickle release ---------------------------------------------------------------------
def write_cifar_pickles(root: Path, per_batch: int = 2) -> tuple[np.ndarray, list[int]]:
    """A tiny ``cifar-10-batches-py``: byte-string keys and uint8 arrays, like the real one."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    images, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch_labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        batch = {b"batch_label": name.encode(), b"labels": batch_labels, b"data": data}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
        images.append(data)
        labels += batch_labels
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return np.concatenate(images).reshape(-1, 3, 32, 32), labels


def test_cifar_pickle_folder(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    images, labels = write_cifar_pickles(root)
    train = load_split(root, "train")
    test = load_split(root, "test")
    assert train.images.shape == (10, 3, 32, 32)
    assert test.images.shape == (2, 3, 32, 32)
    assert torch.equal(train.images, torch.from_numpy(images[:10]))
    assert torch.equal(test.images, torch.from_numpy(images[10:]))
    assert train.labels.tolist() == labels[:10]
    assert test.labels.tolist() == labels[10:]
    assert train.classes[:3] == ["airplane", "automobile", "bird"]
    assert len(train.classes) == 10


def test_cifar_pickle_without_meta_numbers_the_classes(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(root)
    (root / "batches.meta").unlink()
    assert load_split(root, "test").classes == [str(i) for i in range(10)]


def test_cifar_pickle_missing_batch(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(root)
    (root / "data_batch_3").unlink()
    with pytest.raises(
        SecateursError, match=re.escape(f"missing CIFAR-10 batch file: {root}/data_batch_3")
    ):
        load_split(root, "train")


def test_cifar_pickle_of_the_wrong_shape(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(root)
    bad = root / "test_batch"
    bad.write_bytes(pickle.dumps([1, 2, 3], protocol=2))  # a list, not a batch dictionary
    with pytest.raises(SecateursError, match=re.escape(f"not a CIFAR-10 batch file: {bad}")):
        load_split(root, "test")
    bad.write_bytes(pickle.dumps({b"labels": [1], b"data": np.zeros((1, 7), np.uint8)}))
    with pytest.raises(SecateursError, match=re.escape(f"not a CIFAR-10 batch file: {bad}")):
        load_split(root, "test")
    image = np.zeros((1, 3072), np.uint8)
    bad.write_bytes(pickle.dumps({b"labels": [1, 2], b"data": image}))  # a label too many
    with pytest.raises(SecateursError, match="holds 1 images but 2 labels"):
        load_split(root, "test")
    bad.write_bytes(pickle.dumps({b"labels": [10], b"data": image}))  # no class 10
    with pytest.raises(SecateursError, match="has labels from 10 to 10, but 10 classes"):
        load_split(root, "test")
    bad.write_bytes(pickle.dumps({b"labels": [1], b"data": image}))
    (root / "batches.meta").write_bytes(pickle.dumps({b"num_vis": 3072}))
    with pytest.raises(SecateursError, match=r"batches\.meta has no list of label_names"):
        load_split(root, "test")


def test_malicious_cifar_pickle_is_refused_not_run(tmp_path: Path) -> None:
    # the bait works: plain pickle runs the command
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Evil(control), protocol=2))
    assert control.exists()

    root = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(root)
    marker = tmp_path / "pwned"
    (root / "data_batch_1").write_bytes(pickle.dumps(Evil(marker), protocol=2))
    with pytest.raises(
        SecateursError, match=re.escape(f"not a CIFAR-10 batch file: {root}/data_batch_1")
    ):
        load_split(root, "train")
    assert not marker.exists()

    # also when hidden inside an otherwise valid batch dictionary
    payload = {b"labels": [0], b"data": np.zeros((1, 3072), np.uint8), b"x": Evil(marker)}
    (root / "test_batch").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(SecateursError, match="refusing to load"):
        load_split(root, "test")
    assert not marker.exists()


# -- digits -------------------------------------------------------------------------------------
def test_digits_split() -> None:
    from sklearn.datasets import load_digits

    train, test = read_digits("train"), read_digits("test")
    assert train.images.shape == (1437, 1, 8, 8)
    assert test.images.shape == (360, 1, 8, 8)
    assert len(train) + len(test) == 1797
    assert train.classes == test.classes == [str(d) for d in range(10)]
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    # train and test partition the data set: together they hold every image exactly once
    bunch = load_digits()
    full = torch.from_numpy(bunch.images).mul(255 / 16).round().to(torch.uint8)

    def rows(images: torch.Tensor, labels) -> Counter:
        return Counter(
            (image.numpy().tobytes(), int(label))
            for image, label in zip(images, labels, strict=True)
        )

    together = rows(train.images[:, 0], train.labels) + rows(test.images[:, 0], test.labels)
    assert together == rows(full, bunch.target)
    # stratified: every class has 35 to 37 test images
    assert set(Counter(test.labels.tolist()).values()) <= {35, 36, 37}
    # deterministic
    again = read_digits("test")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    assert torch.equal(load_split("digits", "train").images, train.images)


# -- augmentation -------------------------------------------------------------------------------
def test_random_crop_without_padding_is_identity() -> None:
    images = torch.rand(5, 3, 6, 7)
    assert torch.equal(random_crop(images, 0, torch.Generator().manual_seed(0)), images)


def test_random_crop_shifts_each_image() -> None:
    padding, batch, height, width = 2, 16, 6, 7
    images = torch.rand(batch, 3, height, width) + 0.5  # no zeros, so shifts are visible
    out = random_crop(images, padding, torch.Generator().manual_seed(3))
    assert out.shape == images.shape

    replay = torch.Generator().manual_seed(3)
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=replay)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=replay)
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) > 4  # a real mix of shifts
    padded = F.pad(images, (padding,) * 4)
    for b in range(batch):
        y, x = int(dy[b]), int(dx[b])
        assert torch.equal(out[b], padded[b, :, y : y + height, x : x + width])
        # and no other shift gives this crop
        others = [
            (i, j)
            for i in range(2 * padding + 1)
            for j in range(2 * padding + 1)
            if torch.equal(out[b], padded[b, :, i : i + height, j : j + width])
        ]
        assert others == [(y, x)]


def test_random_flip_flips_about_half() -> None:
    images = torch.rand(1000, 2, 3, 4)
    out = random_flip(images, torch.Generator().manual_seed(0))
    same = (out == images).flatten(1).all(1)
    flipped = (out == images.flip(3)).flatten(1).all(1)
    assert bool((same ^ flipped).all())  # every image is exactly one of the two
    assert 450 <= int(flipped.sum()) <= 550
    replay = torch.rand(1000, generator=torch.Generator().manual_seed(0)) < 0.5
    assert torch.equal(flipped, replay)


def test_alternating_flip_mirrors_each_image_in_every_other_epoch() -> None:
    images = torch.rand(6, 2, 3, 4)
    flipped_first = torch.tensor([True, False, True, True, False, False])
    for epoch in range(4):
        out = alternating_flip(images, flipped_first, epoch)
        flipped = (out == images.flip(3)).flatten(1).all(1)
        assert torch.equal(flipped, flipped_first if epoch % 2 == 0 else ~flipped_first)


def test_cutout_zeroes_one_clipped_square_per_image() -> None:
    size, batch, height, width = 3, 200, 6, 7
    images = torch.rand(batch, 2, height, width) + 0.5  # no zeros, so the square shows
    out = cutout(images, size, torch.Generator().manual_seed(1))
    zeroed = out == 0
    assert torch.equal(zeroed[:, 0], zeroed[:, 1])  # the same square in every channel
    assert torch.equal(out[~zeroed], images[~zeroed])  # nothing else changed
    replay = torch.Generator().manual_seed(1)
    top = torch.randint(0, height, (batch,), generator=replay) - size // 2
    left = torch.randint(0, width, (batch,), generator=replay) - size // 2
    for b in range(batch):
        expected = torch.zeros(height, width, dtype=torch.bool)
        y0, x0 = int(top[b]), int(left[b])
        expected[max(y0, 0) : max(y0 + size, 0), max(x0, 0) : max(x0 + size, 0)] = True
        assert torch.equal(zeroed[b, 0], expected)
    counts = zeroed[:, 0].flatten(1).sum(1)
    assert int(counts.max()) == size * size and int(counts.min()) == 2 * 2  # clipped at corners
    assert torch.equal(cutout(images, 0, torch.Generator()), images)


# -- batches ------------------------------------------------------------------------------------
def numbered_set(count: int, channels: int = 3, size: int = 4) -> ImageSet:
    """Image i has label i (so a batch tells which images it holds)."""
    generator = torch.Generator().manual_seed(count)
    images = torch.randint(0, 256, (count, channels, size, size), generator=generator)
    return ImageSet(images.to(torch.uint8), torch.arange(count), [str(i) for i in range(count)])


MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]


def normalised(image_set: ImageSet, index: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (image_set.images[index].float() / 255 - mean) / std


def test_eval_batches_cover_everything_in_order() -> None:
    image_set = numbered_set(10)
    loader = BatchLoader(image_set, 4, MEAN, STD)
    batches = list(loader)
    assert len(loader) == 3
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    labels = torch.cat([labels for _, labels in batches])
    assert labels.tolist() == list(range(10))
    images = torch.cat([images for images, _ in batches])
    torch.testing.assert_close(images, normalised(image_set, torch.arange(10)))
    assert list(loader)[1][1].tolist() == [4, 5, 6, 7]  # a second pass is the same


def test_train_batches_shuffle_by_seed_and_epoch_and_drop_the_last() -> None:
    image_set = numbered_set(10)

    def order(seed: int, epoch: int) -> list[int]:
        loader = BatchLoader(
            image_set, 4, MEAN, STD, augment=Augmentation(padding=0, flip=False), seed=seed
        )
        loader.set_epoch(epoch)
        batches = list(loader)
        assert len(loader) == 2 and [len(b[1]) for b in batches] == [4, 4]
        for images, labels in batches:  # no augmentation: images are the labelled ones
            torch.testing.assert_close(images, normalised(image_set, labels))
        return torch.cat([labels for _, labels in batches]).tolist()

    first = order(0, 0)
    assert len(set(first)) == 8
    assert first != sorted(first)
    assert order(0, 0) == first
    assert order(0, 1) != first
    assert order(0, 1) == order(0, 1)
    assert order(1, 0) != first


def test_train_batches_augment_deterministically() -> None:
    image_set = numbered_set(16)
    augment = Augmentation(padding=1, flip=True)
    loader = BatchLoader(image_set, 8, MEAN, STD, augment=augment, seed=5)
    loader.set_epoch(2)
    first = [images for images, _ in loader]
    again = [images for images, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    labels = torch.cat([labels for _, labels in loader])
    assert not torch.equal(torch.cat(first), normalised(image_set, labels))  # augmented


def test_train_batches_alternate_flips_and_cut_out_when_asked() -> None:
    image_set = numbered_set(16)

    def batch(epoch: int, **augment: object) -> tuple[torch.Tensor, torch.Tensor]:
        loader = BatchLoader(
            image_set, 16, MEAN, STD, augment=Augmentation(padding=0, **augment), seed=2
        )
        loader.set_epoch(epoch)
        images, labels = next(iter(loader))
        order = labels.argsort()
        return images[order], normalised(image_set, labels[order])

    def same(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # per image
        return torch.isclose(a, b, atol=1e-5).flatten(1).all(1)

    flips = []
    for epoch in (0, 1, 2):
        images, plain = batch(epoch, alternate_flip=True)
        flips.append(same(images, plain.flip(3)))
        assert torch.equal(same(images, plain), ~flips[-1])  # the others are untouched
    assert torch.equal(flips[1], ~flips[0]) and torch.equal(flips[2], flips[0])
    assert 3 <= int(flips[0].sum()) <= 13
    for epoch in (0, 1):  # --no-flip wins: alternating flips mirror nothing without flips
        images, plain = batch(epoch, flip=False, alternate_flip=True)
        assert bool(same(images, plain).all())

    images, plain = batch(0, flip=False, cutout=2)
    zeroed = (images == 0).all(1)  # (image, row, column): zero in every channel
    assert int(zeroed.flatten(1).sum(1).min()) >= 1
    assert int(zeroed.flatten(1).sum(1).max()) == 4
    kept = ~zeroed[:, None].expand_as(images)
    torch.testing.assert_close(images[kept], plain[kept])


def test_ranks_read_disjoint_shares() -> None:
    image_set = numbered_set(21)
    for epoch in (0, 1):
        shares = []
        for rank in (0, 1):
            loader = BatchLoader(
                image_set,
                5,
                MEAN,
                STD,
                augment=Augmentation(padding=0),
                seed=3,
                shard=(rank, 2),
            )
            loader.set_epoch(epoch)
            shares.append({int(v) for _, labels in loader for v in labels})
        assert len(shares[0]) == len(shares[1]) == 10
        assert not shares[0] & shares[1]
        assert len(shares[0] | shares[1]) == 2 * (21 // 2)


@pytest.mark.parametrize("channels_last", [False, True])
def test_batches_come_in_the_layout_asked_for(channels_last: bool) -> None:
    # The batched crop leaves NHWC strides; unasked, they switched every convolution to
    # channels-last kernels, one of which crashes PyTorch (secateurs.train.layout).
    image_set = numbered_set(16)
    for train in (True, False):
        augment = Augmentation(padding=1) if train else None
        loader = BatchLoader(image_set, 8, MEAN, STD, augment=augment, channels_last=channels_last)
        for images, _ in loader:
            assert images.is_contiguous() != channels_last
            assert images.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_digits_scale_up_to_32_pixels_for_the_demo() -> None:
    """Bilinear, half-pixel centres: an output corner maps inside the source corner pixel, so
    the corners are the 8x8 corners exactly; the labels and the split do not change."""
    small, large = read_digits("test"), read_digits("test", image_size=32)
    assert tuple(large.images.shape[1:]) == (1, 32, 32) and large.images.dtype == torch.uint8
    assert torch.equal(large.labels, small.labels)
    assert torch.equal(large.images[:, :, 0, 0], small.images[:, :, 0, 0])
    assert torch.equal(large.images[:, :, 31, 31], small.images[:, :, 7, 7])
