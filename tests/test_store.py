"""Saved models (safetensors + manifest) and training checkpoints: round trips, and refusing
anything that would run code when loaded."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from secateurs import __version__
from secateurs.errors import SecateursError
from secateurs.models import create_model
from secateurs.store import MANIFEST_FILE, WEIGHTS_FILE, Manifest, load_model, save_model
from secateurs.train.checkpoint import load_checkpoint, save_checkpoint

CLASSES = [f"class{i}" for i in range(10)]


class Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def manifest(architecture: str = "resnet20", **arguments) -> Manifest:
    arguments = {"num_classes": 10, "in_channels": 3, **arguments}
    return Manifest(
        architecture,
        arguments,
        CLASSES,
        [3, 32, 32],
        [0.49, 0.48, 0.45],
        [0.25, 0.24, 0.26],
        metrics={"top1": 91.25},
    )


def trained_resnet20() -> torch.nn.Module:
    """A resnet20 whose BatchNorm statistics are not the defaults (so buffers must round-trip)."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10)
    with torch.no_grad():
        model.train()(torch.randn(8, 3, 32, 32) * 3 + 1)
    return model.eval()


def test_save_and_load_give_identical_outputs(tmp_path: Path) -> None:
    model = trained_resnet20()
    save_model(model, tmp_path / "m", manifest())
    loaded, loaded_manifest = load_model(tmp_path / "m")
    assert not loaded.training
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert replace(loaded_manifest, weights_sha256=None) == manifest()
    digest = hashlib.sha256((tmp_path / "m" / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert loaded_manifest.weights_sha256 == digest
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [MANIFEST_FILE, WEIGHTS_FILE]


def test_manifest_contents(tmp_path: Path) -> None:
    save_model(create_model("resnet20", num_classes=10), tmp_path, manifest())
    assert json.loads((tmp_path / MANIFEST_FILE).read_text()) == {
        "architecture": "resnet20",
        "arguments": {"num_classes": 10, "in_channels": 3},
        "classes": CLASSES,
        "input_size": [3, 32, 32],
        "mean": [0.49, 0.48, 0.45],
        "std": [0.25, 0.24, 0.26],
        "metrics": {"top1": 91.25},
        "pruning": None,
        "training": {},
        "secateurs_version": __version__,
        "format": 1,
        "image_size": None,
        "weights_sha256": hashlib.sha256((tmp_path / WEIGHTS_FILE).read_bytes()).hexdigest(),
    }


def test_weights_not_saved_with_the_manifest_are_refused(tmp_path: Path) -> None:
    # a crash between the two renames of save_model: new weights beside the old manifest
    torch.manual_seed(0)
    save_model(create_model("resnet20", num_classes=10), tmp_path / "a", manifest())
    save_model(create_model("resnet20", num_classes=10), tmp_path / "b", manifest())
    (tmp_path / "a" / WEIGHTS_FILE).write_bytes((tmp_path / "b" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(SecateursError, match="is not the weights file saved with its manifest"):
        load_model(tmp_path / "a")
    data = json.loads((tmp_path / "a" / MANIFEST_FILE).read_text())
    del data["weights_sha256"]  # a manifest from before the digest: loaded as it is
    (tmp_path / "a" / MANIFEST_FILE).write_text(json.dumps(data))
    assert load_model(tmp_path / "a")[1].weights_sha256 is None


def test_unknown_manifest_keys_are_ignored_and_missing_ones_refused(tmp_path: Path) -> None:
    save_model(create_model("resnet20", num_classes=10), tmp_path, manifest())
    data = json.loads((tmp_path / MANIFEST_FILE).read_text())
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**data, "from_the_future": 1}))
    assert load_model(tmp_path)[1].architecture == "resnet20"
    del data["classes"]
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(SecateursError, match="is not a secateurs manifest"):
        load_model(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("[1, 2]")
    with pytest.raises(SecateursError, match="is not a secateurs manifest"):
        load_model(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(SecateursError, match="is not valid JSON"):
        load_model(tmp_path)
    (tmp_path / MANIFEST_FILE).write_bytes(b"\xff\xfe{")
    with pytest.raises(SecateursError, match="is not a text"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("architecture", 5, "architecture must be a name"),
        ("arguments", None, "arguments must be an object"),
        ("classes", "airplane", "classes must be a list of names"),
        ("input_size", [1, 8], r"input_size must be \[channels, height, width\]"),
        ("input_size", [3, 32, 0], "input_size must be"),
        ("mean", [0.5], r"mean must hold one number per input channel \(3\)"),
        ("std", "wide", "std must hold one number"),
        ("metrics", [], "metrics must be an object"),
        ("pruning", "l1", "pruning must be an object or null"),
        ("image_size", 32.5, "image_size must be a whole number"),
    ],
)
def test_manifest_fields_of_the_wrong_type_are_refused(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    save_model(create_model("resnet20", num_classes=10), tmp_path, manifest())
    data = json.loads((tmp_path / MANIFEST_FILE).read_text())
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**data, key: value}))
    with pytest.raises(SecateursError, match=f"is not a secateurs manifest: {message}"):
        load_model(tmp_path)


def test_pickle_posing_as_safetensors_is_refused_not_run(tmp_path: Path) -> None:
    save_model(create_model("resnet20", num_classes=10), tmp_path, manifest())
    marker = tmp_path / "pwned"
    weights = tmp_path / WEIGHTS_FILE
    weights.write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(SecateursError, match=re.escape(f"{weights} is not a safetensors file")):
        load_model(tmp_path)
    assert not marker.exists()
    # the control: the file refused is armed, unpickling it runs the command
    pickle.loads(weights.read_bytes())
    assert marker.exists()
    marker.unlink()
    # a torch.save file (a zip of pickles) is refused the same way
    torch.save({"state": Evil(marker)}, weights)
    with pytest.raises(SecateursError, match="is not a safetensors file"):
        load_model(tmp_path)
    assert not marker.exists()
    # the control again: loaded (from its bytes: torch.load reads a *.safetensors name as
    # safetensors), it fires
    torch.load(io.BytesIO(weights.read_bytes()), weights_only=False)
    assert marker.exists()


def test_missing_pieces(tmp_path: Path) -> None:
    with pytest.raises(SecateursError, match="no such model directory"):
        load_model(tmp_path / "absent")
    with pytest.raises(SecateursError, match=f"it has no {MANIFEST_FILE}"):
        load_model(tmp_path)
    save_model(create_model("resnet20", num_classes=10), tmp_path, manifest())
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(SecateursError, match="missing weights file"):
        load_model(tmp_path)


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    save_model(create_model("resnet20", num_classes=10), tmp_path / "a", manifest("resnet32"))
    with pytest.raises(SecateursError, match="do not fit resnet32"):
        load_model(tmp_path / "a")
    save_model(create_model("resnet20", num_classes=10), tmp_path / "b", manifest(num_classes=100))
    with pytest.raises(SecateursError, match="do not fit resnet20"):
        load_model(tmp_path / "b")
    save_model(create_model("resnet20", num_classes=10), tmp_path / "c", manifest("resnet2O"))
    with pytest.raises(SecateursError, match="unknown model 'resnet2O'"):
        load_model(tmp_path / "c")


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    state = {"model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3, "history": "[]"}
    save_checkpoint(state, tmp_path / "checkpoint.pt")
    loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["epoch"] == 3 and loaded["history"] == "[]"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left
    with pytest.raises(SecateursError, match="no checkpoint to resume from"):
        load_checkpoint(tmp_path / "absent.pt")


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dumps"])
def test_malicious_checkpoint_is_refused_not_run(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    payload = {"model": {}, "epoch": Evil(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(SecateursError, match=re.escape(f"{path} is not a secateurs checkpoint")):
        load_checkpoint(path)
    assert not marker.exists()
    # the control: the file refused is armed, unpickling it runs the command
    if writer == "torch.save":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_garbage_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(SecateursError, match="is not a secateurs checkpoint"):
        load_checkpoint(path)
