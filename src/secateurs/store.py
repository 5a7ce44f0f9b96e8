"""A saved model is a directory: ``model.safetensors`` (weights) and ``manifest.json`` (how to
rebuild the architecture, the classes, the input size and normalisation, metrics).

Nothing is pickled, so loading a model never executes code from a file. A pruned model's manifest
also records the pruning that was applied (``pruning``), which is replayed on the freshly built base
architecture before the weights are loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from secateurs import __version__
from secateurs.errors import SecateursError
from secateurs.models import create_model
from secateurs.pruning.record import ManifestPruning

WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1


@dataclass
class Manifest:
    architecture: str
    arguments: dict[str, Any]
    classes: list[str]
    input_size: list[int]  # (channels, height, width)
    mean: list[float]
    std: list[float]
    metrics: dict[str, Any] = field(default_factory=dict)
    pruning: ManifestPruning | None = None  # a JSON object is read as one (any version)
    training: dict[str, Any] = field(default_factory=dict)  # the recipe it was trained with
    secateurs_version: str = __version__
    format: int = MANIFEST_FORMAT
    image_size: int | None = None  # the --image-size the training data was read with
    # SHA-256 of model.safetensors as saved with this manifest: the two files are replaced one
    # after the other, so a crash between could pair them wrongly; loading checks (when present)
    weights_sha256: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.pruning, dict):  # JSON (this version's or an older shape)
            self.pruning = ManifestPruning.from_json(self.pruning)

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON (the pruning record in its current version)."""
        data = asdict(replace(self, pruning=None))
        data["pruning"] = self.pruning.to_json() if self.pruning is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], source: Path) -> Manifest:
        known = set(cls.__dataclass_fields__)
        if not isinstance(data, dict):
            raise SecateursError(f"{source} is not a secateurs manifest: not a JSON object")
        values = {key: value for key, value in data.items() if key in known}
        if isinstance(values.get("pruning"), dict):
            values["pruning"] = ManifestPruning.from_json(values["pruning"], str(source))
        try:
            manifest = cls(**values)
        except TypeError as error:
            raise SecateursError(f"{source} is not a secateurs manifest: {error}") from None
        problem = manifest._problem()
        if problem:
            raise SecateursError(f"{source} is not a secateurs manifest: {problem}")
        return manifest

    def _problem(self) -> str | None:
        """What is wrong with the fields' types and shapes, if anything."""

        def numbers(values: Any) -> bool:
            return isinstance(values, list) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values
            )

        if not isinstance(self.architecture, str):
            return f"architecture must be a name, not {self.architecture!r}"
        if not isinstance(self.arguments, dict):
            return f"arguments must be an object, not {self.arguments!r}"
        if not isinstance(self.classes, list) or not all(isinstance(c, str) for c in self.classes):
            return "classes must be a list of names"
        size = self.input_size
        if (
            not numbers(size)
            or len(size) != 3
            or not all(isinstance(v, int) and v > 0 for v in size)
        ):
            return f"input_size must be [channels, height, width], not {size!r}"
        for name in ("mean", "std"):
            values = getattr(self, name)
            if not numbers(values) or len(values) != size[0]:
                return f"{name} must hold one number per input channel ({size[0]})"
        for name in ("metrics", "training"):
            if not isinstance(getattr(self, name), dict):
                return f"{name} must be an object"
        if self.pruning is not None and not isinstance(self.pruning, ManifestPruning):
            return "pruning must be an object or null"
        if self.weights_sha256 is not None and not isinstance(self.weights_sha256, str):
            return "weights_sha256 must be a hex digest or null"
        if self.image_size is not None and not isinstance(self.image_size, int):
            return f"image_size must be a whole number or null, not {self.image_size!r}"
        return None


CUSTOM_PREFIX = "custom:"  # architecture of a model secateurs cannot build: the class's name


def build_model(manifest: Manifest, base: nn.Module | None = None) -> nn.Module:
    """The architecture a manifest describes, pruned as it records, with untrained weights.
    ``base``: the un-pruned model to replay the pruning on, for a class the registry does not
    know (it is changed in place)."""
    if base is not None:
        model = base
    elif manifest.architecture.startswith(CUSTOM_PREFIX):
        raise SecateursError(
            f"the model is a {manifest.architecture.removeprefix(CUSTOM_PREFIX)}, which secateurs "
            "cannot build: load it with secateurs.load(directory, base=YourModel(...))"
        )
    else:
        model = create_model(manifest.architecture, **manifest.arguments)
    if manifest.pruning is not None:
        from secateurs.pruning.history import replay_pruning

        replay_pruning(model, manifest.pruning, manifest.input_size)
    return model


def save_model(model: nn.Module, directory: str | Path, manifest: Manifest) -> Path:
    """Write ``model`` and ``manifest`` to ``directory`` (created; files replaced atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    weights_tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(state, weights_tmp)
    record = replace(manifest, weights_sha256=_sha256(weights_tmp))
    manifest_tmp = directory / (MANIFEST_FILE + ".tmp")
    manifest_tmp.write_text(json.dumps(record.to_json(), indent=2) + "\n")
    os.replace(weights_tmp, directory / WEIGHTS_FILE)
    os.replace(manifest_tmp, directory / MANIFEST_FILE)
    return directory


def read_manifest(directory: str | Path) -> Manifest:
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise SecateursError(f"no such model directory: {directory}")
    if not path.is_file():
        raise SecateursError(f"{directory} is not a secateurs model: it has no {MANIFEST_FILE}")
    try:
        return Manifest.from_json(json.loads(path.read_text()), path)
    except json.JSONDecodeError as error:
        raise SecateursError(f"{path} is not valid JSON: {error}") from None
    except UnicodeDecodeError:
        raise SecateursError(f"{path} is not a text (UTF-8) JSON file") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file; anything else (a pickle, say) is refused, never run."""
    if not path.is_file():
        raise SecateursError(f"missing weights file: {path}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise SecateursError(f"{path} is not a safetensors file ({error}); refusing it") from None


def load_model(
    directory: str | Path, base: nn.Module | None = None, device: torch.device | None = None
) -> tuple[nn.Module, Manifest]:
    """Rebuild and load the model saved in ``directory``; it is returned in eval mode, on
    ``device`` (default: the CPU). ``base``: the un-pruned model (of any class) that the
    recorded pruning is replayed on."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    model = build_model(manifest, base)
    state = read_weights(directory / WEIGHTS_FILE)
    if manifest.weights_sha256 and _sha256(directory / WEIGHTS_FILE) != manifest.weights_sha256:
        raise SecateursError(
            f"{directory / WEIGHTS_FILE} is not the weights file saved with its manifest "
            "(its SHA-256 differs); was a save interrupted?"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[:2]
        raise SecateursError(
            f"the weights in {directory} do not fit {manifest.architecture}: {' '.join(first)}"
        ) from None
    return (model.to(device) if device is not None else model).eval(), manifest
