"""Transfer: a saved (or imported) model started on another data set, its classifier replaced by
a fresh one with the new class count, then trained as usual (``secateurs train --from DIR``).

The classifier is the last linear layer (or 1x1 convolution) that produces the model's logits:
the module whose output reaches the model's output with one number per class. Only that layer is
new; every other weight, and the input normalisation the features were trained with, carries
over.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch
from torch import nn

from secateurs.data import ImageSet
from secateurs.device import model_device
from secateurs.errors import SecateursError, first_line
from secateurs.models.modules import swap_module
from secateurs.store import Manifest, build_model, load_model

log = logging.getLogger(__name__)


def find_classifier(model: nn.Module, input_size: list[int], classes: int) -> str:
    """The name of the layer that computes the logits: the last linear layer or convolution, in
    execution order, with ``classes`` outputs."""
    order: list[str] = []
    hooks = [
        module.register_forward_hook(lambda m, i, o, name=name: order.append(name))
        for name, module in model.named_modules()
        if _outputs(module) == classes
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size, device=model_device(model)))
    finally:
        for hook in hooks:
            hook.remove()
    if not order:
        raise SecateursError(
            f"found no linear layer or convolution with the model's {classes} outputs to replace"
        )
    return order[-1]


def _outputs(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1:
        return module.out_channels
    return None


def new_classifier(layer: nn.Module, classes: int) -> nn.Module:
    """A freshly initialised layer like ``layer`` with ``classes`` outputs, on its device."""
    device = layer.weight.device
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, classes, bias=layer.bias is not None, device=device)
    assert isinstance(layer, nn.Conv2d)
    return nn.Conv2d(layer.in_channels, classes, 1, bias=layer.bias is not None, device=device)


def transfer_model(source: str, train_set: ImageSet) -> tuple[nn.Module, Manifest]:
    """The model saved in ``source`` with its classifier replaced for ``train_set``'s classes,
    and the manifest that rebuilds it (checked: it rebuilds the same shapes)."""
    model, manifest = load_model(source)
    channels, size = train_set.input_size[0], list(train_set.input_size)
    if channels != manifest.input_size[0]:
        raise SecateursError(
            f"{source} takes {manifest.input_size[0]}-channel images, the data "
            f"{channels}-channel ones"
        )
    name = find_classifier(model, manifest.input_size, len(manifest.classes))
    old = model.get_submodule(name)
    count = len(train_set.classes)
    swap_module(model, name, new_classifier(old, count))
    log.info(
        "transfer: classifier %s replaced (%d -> %d outputs, new weights) for the data's classes",
        name,
        len(manifest.classes),
        count,
    )
    arguments = dict(manifest.arguments)
    if "num_classes" in arguments or not manifest.architecture.startswith("factory:"):
        arguments["num_classes"] = count
    record = {"transferred_from": str(source), "classifier": name}
    manifest = replace(
        manifest,
        arguments=arguments,
        classes=train_set.classes,
        input_size=size,
        metrics={},
        training=record,
    )
    _check_rebuilds(model, manifest, source)
    _check_runs(model, size, source)
    return model.train(), manifest


def _check_rebuilds(model: nn.Module, manifest: Manifest, source: str) -> None:
    """The new manifest must rebuild this model, or the transferred model could not be loaded."""
    if manifest.architecture.startswith("custom:"):
        raise SecateursError(
            f"{source} is a {manifest.architecture} model, which only the Python API can rebuild: "
            "train it there (secateurs.fine_tune) after replacing its classifier"
        )
    rebuilt = build_model(manifest).state_dict()
    for key, tensor in model.state_dict().items():
        if key not in rebuilt or rebuilt[key].shape != tensor.shape:
            raise SecateursError(
                f"{manifest.architecture} cannot be rebuilt with {len(manifest.classes)} classes "
                f"({key} differs): does its factory take num_classes?"
            )


def _check_runs(model: nn.Module, size: list[int], source: str) -> None:
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *size, device=model_device(model)))
    except RuntimeError as error:
        detail = first_line(error)
        raise SecateursError(f"{source} cannot take {tuple(size)} images: {detail}") from None
