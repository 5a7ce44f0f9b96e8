"""What each layer of a model sees for one input size: the convolutions' input and output sizes,
the convolutions reading the image directly, depthwise layers, and how many multiply-adds each
weight costs. Measured with forward hooks (:func:`probe`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from secateurs.device import model_device


def is_depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups > 1 and conv.in_channels == conv.groups


def probe(model: nn.Module, images: Tensor, handles: list) -> None:
    """One eval-mode forward pass of ``images`` for the given hooks; the hooks are removed and
    the model's training mode restored afterwards, whatever happens."""
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()


def input_layers(model: nn.Module, input_size: Sequence[int]) -> set[nn.Module]:
    """Convolutions that read the model's input directly (the image)."""
    images = torch.zeros(1, *input_size, device=model_device(model))
    found: set[nn.Module] = set()

    def hook(module, inputs, output) -> None:
        if inputs[0] is images:
            found.add(module)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    probe(model, images, handles)
    return found


def conv_input_sizes(model: nn.Module, input_size: Sequence[int]) -> dict[str, tuple[int, ...]]:
    names = {module: name for name, module in model.named_modules()}
    found: dict[str, tuple[int, ...]] = {}

    def hook(module, inputs) -> None:
        found[names[module]] = tuple(inputs[0].shape[1:])

    handles = [
        m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)
    ]
    probe(model, torch.zeros(1, *input_size, device=model_device(model)), handles)
    return found


def conv_output_sizes(model: nn.Module, input_size: Sequence[int]) -> dict[str, tuple[int, int]]:
    """(H_out, W_out) of every 2-D convolution of ``model`` for one input of ``input_size``."""
    names = {module: name for name, module in model.named_modules()}
    found: dict[str, tuple[int, int]] = {}

    def hook(module, inputs, output) -> None:
        found[names[module]] = (int(output.shape[-2]), int(output.shape[-1]))

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) or hasattr(m, "kept_columns")]
    handles = [m.register_forward_hook(hook) for m in convs]
    probe(model, torch.zeros(1, *input_size, device=model_device(model)), handles)
    return found


def macs_per_weight(model: nn.Module, input_size: Sequence[int]) -> dict[str, int]:
    sizes = conv_output_sizes(model, input_size)
    uses = {name: h * w for name, (h, w) in sizes.items()}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            uses[name] = 1
    return uses
