"""timm models by name (``timm:resnet18``), random init only.

timm is an optional dependency (``pip install 'secateurs[timm]'``). Models are always created with
``pretrained=False``: nothing is downloaded; trained weights come from ``secateurs import
--weights FILE`` or a saved model directory.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from secateurs.errors import SecateursError, first_line
from secateurs.models.registry import TIMM_PREFIX, ModelEntry


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise SecateursError(
            "timm is not installed: pip install 'secateurs[timm]' for timm models"
        ) from None
    return timm


def timm_entry(name: str) -> ModelEntry:
    """The entry of timm's model ``name``; its input size is the model's default configuration."""
    timm = _timm()
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise SecateursError(f"timm has no model {name!r}{hint}")

    def factory(num_classes: int | None = None, in_channels: int = 3, **kwargs: Any) -> nn.Module:
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        try:
            return timm.create_model(name, pretrained=False, in_chans=in_channels, **kwargs)
        except (TypeError, ValueError, RuntimeError, AssertionError) as error:
            raise SecateursError(f"timm cannot build {name!r}: {first_line(error)}") from None

    size = tuple(timm.get_pretrained_cfg_value(name, "input_size") or (3, 224, 224))
    return ModelEntry(TIMM_PREFIX + name, factory, f"timm {name} (random init)", size)


def timm_normalisation(name: str) -> tuple[list[float], list[float]] | None:
    """The mean and std timm's configuration of ``name`` gives its inputs, if it gives them."""
    timm = _timm()
    mean = timm.get_pretrained_cfg_value(name, "mean")
    std = timm.get_pretrained_cfg_value(name, "std")
    return (list(mean), list(std)) if mean and std else None
