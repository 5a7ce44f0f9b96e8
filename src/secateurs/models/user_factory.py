"""A user's own model code: ``package.module:factory``, a function or class that builds an
``nn.Module``, recorded in a manifest as ``factory:package.module:factory``.

Naming code in a manifest must never be enough to run it (a model directory may come from anyone),
so a factory is imported only once it is allowed: named on the command line (``secateurs import
SPEC``, or ``secateurs --allow-factory SPEC COMMAND ...`` for a saved model), or in Python
(``secateurs.import_model(SPEC)``, ``secateurs.load(..., allow_factory=True)``).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from secateurs.errors import SecateursError, first_line
from secateurs.models.registry import FACTORY_PREFIX, ModelEntry

_DOTTED = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*"
FACTORY_SPEC = re.compile(rf"^{_DOTTED}:{_DOTTED}$")
_ALLOWED: set[str] = set()


def is_factory_spec(spec: str) -> bool:
    """Whether ``spec`` has the form ``package.module:factory``."""
    return bool(FACTORY_SPEC.match(spec))


def allow_factory(spec: str) -> None:
    """Let ``spec`` (``package.module:factory``) be imported and called to rebuild models."""
    if not is_factory_spec(spec):
        raise SecateursError(f"{spec!r} is not a factory: expected package.module:factory")
    _ALLOWED.add(spec)


@contextmanager
def _working_directory_importable() -> Iterator[None]:
    """``mymodels.py`` beside the user is importable, as it is with ``python -m``."""
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def resolve_factory(spec: str) -> Callable[..., Any]:
    """The callable ``spec`` names (imported; the caller has checked it is allowed)."""
    module_name, _, attribute = spec.partition(":")
    try:
        with _working_directory_importable():
            found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise SecateursError(f"cannot import {module_name!r} for {spec}: {error}") from None
    except Exception as error:  # the user's module failed while importing
        detail = f"{type(error).__name__}: {first_line(error)}"
        raise SecateursError(f"importing {module_name!r} failed: {detail}") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise SecateursError(f"{module_name!r} has no {attribute!r} (from {spec})")
        found = getattr(found, part)
    if not callable(found):
        raise SecateursError(f"{spec} is not callable: it is a {type(found).__name__}")
    return found


def call_factory(spec: str, factory: Callable[..., Any], arguments: dict[str, Any]) -> nn.Module:
    """``factory(**arguments)``; whatever it raises, or a result that is not a module, is one
    line naming ``spec``."""
    try:
        model = factory(**arguments)
    except Exception as error:
        detail = f"{type(error).__name__}: {first_line(error)}"
        raise SecateursError(f"{spec}({_call(arguments)}) raised {detail}") from None
    if not isinstance(model, nn.Module):
        raise SecateursError(f"{spec} returned a {type(model).__name__}, not a torch nn.Module")
    return model


def _call(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in arguments.items())


def factory_entry(spec: str) -> ModelEntry:
    """The entry of an allowed factory; a factory that was not allowed is refused in one line."""
    if spec not in _ALLOWED:
        raise SecateursError(
            f"the model is built by your code {spec}, which secateurs imports only when you name "
            f"it: secateurs --allow-factory {spec} COMMAND ... (Python: "
            "secateurs.load(directory, allow_factory=True) or base=YourModel())"
        )
    factory = resolve_factory(spec)

    def build(**arguments: Any) -> nn.Module:
        return call_factory(spec, factory, arguments)

    return ModelEntry(FACTORY_PREFIX + spec, build, f"{spec} (your code)", (3, 224, 224))
