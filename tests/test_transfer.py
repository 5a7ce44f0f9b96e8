"""``secateurs train --from DIR``: a saved model moved to another data set, its classifier (the
one layer named in the log) replaced for the new classes, then pruned as usual."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from secateurs.cli.main import main
from secateurs.data import load_split
from secateurs.models import create_model
from secateurs.store import Manifest, load_model, save_model


@pytest.fixture(scope="module")
def three_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another data set: an ImageFolder of the digits 0, 1 and 2 only, under other names."""
    root = tmp_path_factory.mktemp("three-digits")
    for split in ("train", "test"):
        images = load_split("digits", split)
        for label, name in enumerate(("nought", "one", "two")):
            folder = root / split / name
            folder.mkdir(parents=True)
            chosen = images.images[images.labels == label][:20]
            for index, image in enumerate(chosen):
                Image.fromarray(image[0].numpy().astype(np.uint8), "L").save(
                    folder / f"{index}.png"
                )
    return root


def test_transfer_replaces_the_classifier_and_keeps_the_rest(three_digits, tmp_path, caplog):
    torch.manual_seed(0)
    source = create_model("resnet20", num_classes=10, in_channels=1)
    digits = load_split("digits", "train")
    mean, std = digits.channel_stats()
    manifest = Manifest("resnet20", {"num_classes": 10, "in_channels": 1}, digits.classes,
                        [1, 8, 8], mean, std)  # fmt: skip
    save_model(source, tmp_path / "source", manifest)
    out = tmp_path / "moved"
    caplog.set_level("INFO")
    argv = ["train", "--from", str(tmp_path / "source"), "--data", str(three_digits)]
    tiny_steps = ["--epochs", "1", "--batch-size", "30", "--lr", "1e-9", "--warmup-epochs", "0"]
    assert main([*argv, *tiny_steps, "--out", str(out), "--json"]) == 0
    assert "classifier fc replaced (10 -> 3 outputs" in caplog.text

    moved, moved_manifest = load_model(out / "model")
    assert moved_manifest.classes == ["nought", "one", "two"]
    assert moved_manifest.arguments == {"num_classes": 3, "in_channels": 1}
    assert (moved_manifest.mean, moved_manifest.std) == (mean, std)  # the features' own
    assert moved_manifest.training["transferred_from"] == str(tmp_path / "source")
    assert moved.fc.out_features == 3
    # every other layer started from the source (a learning rate of 1e-9 leaves them there)
    assert torch.allclose(moved.conv1.weight, source.conv1.weight, atol=1e-6)
    assert not torch.allclose(
        moved.conv1.weight, create_model("resnet20", in_channels=1).conv1.weight
    )

    # ... and it prunes as usual
    pruned = tmp_path / "pruned"
    prune = ["prune", str(out / "model"), "--method", "l1", "--target-macs", "0.5", "-o"]
    assert main([*prune, str(pruned), "--latency-repeats", "0", "--json"]) == 0
    again, _ = load_model(pruned)
    assert again(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_transfer_to_images_of_other_channels_is_one_line(three_digits, tmp_path, capsys):
    source = create_model("resnet20", num_classes=10)
    manifest = Manifest("resnet20", {"num_classes": 10}, list("0123456789"), [3, 8, 8],
                        [0.5] * 3, [0.25] * 3)  # fmt: skip
    save_model(source, tmp_path / "rgb", manifest)
    argv = ["train", "--from", str(tmp_path / "rgb"), "--data", str(three_digits)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"secateurs: error: {tmp_path / 'rgb'} takes 3-channel images, the data "
                   "1-channel ones"]  # fmt: skip
