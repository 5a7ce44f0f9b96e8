"""The model zoo: registered factories built by name. Importing this package registers them all."""

from secateurs.models import mobilenetv2_cifar, resnet_cifar, vgg_cifar  # noqa: F401 (registers)
from secateurs.models.registry import (
    TORCHVISION_PREFIX,
    ModelEntry,
    create_model,
    list_models,
    model_entry,
    register_model,
)

__all__ = [
    "TORCHVISION_PREFIX",
    "ModelEntry",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
]
