"""Finding and swapping a model's layers by name: what compaction (SPP's compact columns,
SG-CNN's diverse group convolutions) and the replay of a recorded model need."""

from __future__ import annotations

from torch import nn

from secateurs.errors import SecateursError


def recorded_conv(model: nn.Module, name: str, what: str) -> nn.Conv2d:
    """The convolution a record names, or a one-line error naming the ``what`` layer."""
    try:
        conv = model.get_submodule(name)
    except AttributeError:
        raise SecateursError(f"the recorded {what} layer {name!r} is not in the model") from None
    if not isinstance(conv, nn.Conv2d):
        raise SecateursError(f"the recorded {what} layer {name!r} is not a convolution")
    return conv


def swap_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` where ``model``'s submodule ``name`` is."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)
