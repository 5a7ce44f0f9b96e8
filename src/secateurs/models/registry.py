"""A registry of model factories, found by name.

Factories are registered with :func:`register_model`; :func:`create_model` builds one by name with
keyword arguments, which is also how a saved model's manifest rebuilds its architecture. Names of
the form ``torchvision:<name>`` and ``timm:<name>`` build a torchvision or timm model (random init;
weights only ever come from local files); ``factory:<module>:<function>`` calls a user's own code,
once allowed (models/user_factory.py).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from secateurs.errors import SecateursError, first_line

TORCHVISION_PREFIX = "torchvision:"
TIMM_PREFIX = "timm:"
FACTORY_PREFIX = "factory:"  # a user's own package.module:factory (models/user_factory.py)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    description: str
    input_size: tuple[int, int, int]  # (channels, height, width) the model is designed for


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str, description: str, input_size: tuple[int, int, int] = (3, 32, 32)
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``factory`` under ``name``."""

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, factory, description, input_size)
        return factory

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a shell-style ``pattern``, sorted."""
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def model_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; a :class:`SecateursError` suggesting close names if none."""
    if name.startswith(TORCHVISION_PREFIX):
        from secateurs.models.torchvision_models import torchvision_entry

        return torchvision_entry(name[len(TORCHVISION_PREFIX) :])
    if name.startswith(TIMM_PREFIX):
        from secateurs.models.timm_models import timm_entry

        return timm_entry(name.removeprefix(TIMM_PREFIX))
    if name.startswith(FACTORY_PREFIX):
        from secateurs.models.user_factory import factory_entry

        return factory_entry(name.removeprefix(FACTORY_PREFIX))
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise SecateursError(
            f"unknown model {name!r}{hint}; `secateurs models` lists them, and "
            f"'{TORCHVISION_PREFIX}<name>' / '{TIMM_PREFIX}<name>' build torchvision / timm models"
        )
    return _MODELS[name]


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the model registered as ``name`` with ``kwargs`` (e.g. ``num_classes=10``)."""
    entry = model_entry(name)
    try:
        return entry.factory(**kwargs)
    except TypeError as error:
        raise SecateursError(f"model {name!r} does not take these arguments: {error}") from None
    except (ValueError, RuntimeError) as error:  # e.g. a width that leaves no channels
        first = first_line(error)
        raise SecateursError(f"cannot build model {name!r} with {kwargs}: {first}") from None
