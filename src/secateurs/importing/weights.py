"""Weights trained elsewhere: read a file without running code from it, and fit it to a model.

A ``.safetensors`` file holds tensors only. Any other file is read as a PyTorch pickle with
``torch.load(weights_only=True)``, whose unpickler builds tensors and plain containers and refuses
anything that would need code (a pickled model class, a custom object): such a file is refused,
never executed. A checkpoint that wraps its weights (``{"state_dict": ...}``, ``{"model": ...}``)
is unwrapped, and a ``module.`` prefix (a model saved from inside DDP) is dropped.
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.errors import SecateursError, first_line
from secateurs.store import read_weights

log = logging.getLogger(__name__)
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")  # checked in this order
NOTE = {"missing": " (left as initialised)", "unexpected": " (ignored)"}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors in ``path`` by name (see the module's docstring for what is accepted)."""
    path = Path(path)
    if not path.is_file():
        raise SecateursError(f"no such weights file: {path}")
    if path.suffix == ".safetensors":
        return read_weights(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickling_reason(error)
        raise SecateursError(
            f"refusing {path}: it needs code to load ({reason}); nothing from it was run. "
            "Save a state_dict (model.state_dict()) or a safetensors file instead"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise SecateursError(
            f"{path} is neither a safetensors file nor a PyTorch state_dict: {first_line(error)}"
        ) from None
    return _tensors(_unwrap(loaded, path), path)


def _unpickling_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's long weights_only message that names what the file wanted to run."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    if found:
        return f"it pickles {found.group(1)}, which only code can rebuild"
    return first_line(error, 160)


def _unwrap(loaded: Any, path: Path) -> Any:
    if isinstance(loaded, dict):
        for key in WRAPPER_KEYS:
            if key in loaded and isinstance(loaded[key], dict):
                log.info("weights: using the %r entry of %s", key, path.name)
                return loaded[key]
    return loaded


def _tensors(state: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict) or not state:
        kind = type(state).__name__
        raise SecateursError(f"{path} holds a {kind}, not a state_dict of named tensors")
    others = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if others:
        raise SecateursError(
            f"{path} is not a state_dict: {others[0]!r} is a {type(state[others[0]]).__name__} "
            f"(the checkpoint's weights may sit under another key: {', '.join(map(str, state))})"
        )
    names = list(state)
    if all(name.startswith("module.") for name in names):  # saved from inside DDP
        return {name.removeprefix("module."): tensor for name, tensor in state.items()}
    return state


@dataclass
class Fit:
    """How a state_dict met a model: the keys the model lacks in the file (``missing``) and the
    file's keys the model has no place for (``unexpected``)."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def fit_weights(
    model: nn.Module, state: dict[str, torch.Tensor], architecture: str, strict: bool
) -> Fit:
    """Load ``state`` into ``model``; a tensor of another shape is refused (the first one, with
    both shapes), so are weights sharing no name with the model, and, when ``strict``, any
    missing or unexpected key. Missing and unexpected keys are logged, one line each."""
    own = model.state_dict()
    shared = [name for name in own if name in state]  # in the model's order
    if not shared:
        raise SecateursError(
            f"the weights are for another architecture than {architecture}: none of their "
            f"{len(state)} names is one of its own (first: {next(iter(state))!r}, "
            f"{architecture}'s: {next(iter(own))!r})"
        )
    for name in shared:
        if state[name].shape != own[name].shape:
            raise SecateursError(
                f"the weights do not fit {architecture}: {name} is {tuple(state[name].shape)} in "
                f"the file and {tuple(own[name].shape)} in the model" + _head_hint(name, model)
            )
    fit = Fit(sorted(set(own) - set(state)), sorted(set(state) - set(own)))
    for kind, names in (("missing", fit.missing), ("unexpected", fit.unexpected)):
        if names:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            log.warning("%d %s keys%s: %s", len(names), kind, NOTE[kind], shown)
    if strict and (fit.missing or fit.unexpected):
        kinds = f"{len(fit.missing)} missing and {len(fit.unexpected)} unexpected keys"
        raise SecateursError(f"--strict refuses the weights: {kinds}")
    model.load_state_dict(state, strict=False)
    return fit


def _head_hint(name: str, model: nn.Module) -> str:
    """Where the classifier is the mismatch, say how to change the class count."""
    outputs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if outputs and name.rsplit(".", 1)[0] == _name_of(model, outputs[-1]):
        return " (the classifier: import with the file's class count, then train --from)"
    return ""


def _name_of(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, found in model.named_modules() if found is module)
