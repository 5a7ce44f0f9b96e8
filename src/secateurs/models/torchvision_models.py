"""torchvision classification models by name (``torchvision:resnet18``), random init only.

torchvision is an optional dependency; weights are never downloaded (``weights=None``): trained
weights come from a local secateurs model directory.
"""

from __future__ import annotations

from torch import nn

from secateurs.errors import SecateursError
from secateurs.models.registry import TORCHVISION_PREFIX, ModelEntry


def _torchvision_models():
    try:
        import torchvision.models
    except ImportError:
        raise SecateursError(
            "torchvision is not installed: pip install 'secateurs[vision]' for torchvision models"
        ) from None
    return torchvision.models


def list_torchvision_models() -> list[str]:
    """Classification model names torchvision offers (empty when torchvision is absent)."""
    try:
        models = _torchvision_models()
    except SecateursError:
        return []
    return sorted(models.list_models(module=models))


AUXILIARY_HEADS = {"googlenet", "inception_v3"}  # built without their auxiliary classifiers


def torchvision_entry(name: str) -> ModelEntry:
    models = _torchvision_models()
    available = models.list_models(module=models)
    if name not in available:
        import difflib

        close = difflib.get_close_matches(name, available, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise SecateursError(f"torchvision has no classification model {name!r}{hint}")

    def factory(num_classes: int = 1000, in_channels: int = 3, **kwargs: object) -> nn.Module:
        # secateurs passes in_channels to every model; torchvision's models take RGB only
        if in_channels != 3:
            raise SecateursError(f"torchvision:{name} takes 3-channel images, not {in_channels}")
        if name in AUXILIARY_HEADS:  # their training forward returns a tuple with the aux logits
            kwargs.setdefault("aux_logits", False)
        return models.get_model(name, weights=None, num_classes=num_classes, **kwargs)

    size = 299 if name == "inception_v3" else 224
    return ModelEntry(
        TORCHVISION_PREFIX + name, factory, f"torchvision {name} (random init)", (3, size, size)
    )
