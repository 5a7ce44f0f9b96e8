"""Multiply-accumulate operations (MACs) and parameter counts, by Torch-Pruning's op counter.

MACs count one multiply-add as one operation, for one image; many papers call this "FLOPs".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn

from secateurs.device import model_device


def example_input(
    input_size: Sequence[int], batch: int = 1, device: torch.device | str = "cpu"
) -> torch.Tensor:
    return torch.randn(batch, *input_size, device=device)


def _functional_macs(module: nn.Module, output: torch.Tensor) -> int:
    """MACs of one call of a layer computing with functional calls, for one image."""
    output_size = (int(output.shape[-2]), int(output.shape[-1]))
    if hasattr(module, "kept_columns"):  # SPP's CompactConv2d: kept columns x outputs
        return module.kept_columns * module.out_channels * output_size[0] * output_size[1]
    return module.macs(output_size)  # SG-CNN's DiverseGroupConv2d: what its form computes


def count_cost(model: nn.Module, input_size: Sequence[int]) -> dict[str, int]:
    """``macs`` for one image of ``input_size`` (C, H, W) and ``params`` of ``model``.

    Torch-Pruning's counter sees only standard layers; a compact column convolution (SPP's
    ``CompactConv2d``, found by its ``kept_columns``) and a diverse group convolution (SG-CNN's
    ``DiverseGroupConv2d``, found by its ``macs`` method) compute with functional calls it cannot
    see, so their MACs are added here: for the first, kept columns x output channels x output
    positions; for the second, what its execution form computes, padding and bias adds included
    (Torch-Pruning counts a convolution's bias adds). Their parameters are ordinary parameters,
    which the counter sees."""
    was_training = model.training
    model.eval()
    functional_macs: list[int] = []

    def count_functional(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        functional_macs.append(_functional_macs(module, output))

    functional = [
        m
        for m in model.modules()
        if hasattr(m, "kept_columns") or callable(getattr(m, "macs", None))
    ]
    handles = [m.register_forward_hook(count_functional) for m in functional]
    try:
        with torch.no_grad():
            images = example_input(input_size, device=model_device(model))
            macs, params = tp.utils.count_ops_and_params(model, images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    # the counter runs the model once: one entry per functional layer
    return {"macs": int(macs) + sum(functional_macs[: len(functional)]), "params": int(params)}


def params_by_layer_type(model: nn.Module) -> dict[str, int]:
    """Parameters of ``model`` by the kind of layer holding them: ``conv``, ``linear`` (the
    fully-connected layers), ``norm`` (BatchNorm and the like) and ``other``."""
    counts = {"conv": 0, "linear": 0, "norm": 0, "other": 0}
    for module in model.modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if isinstance(module, nn.modules.conv._ConvNd):
            counts["conv"] += own
        elif isinstance(module, nn.Linear):
            counts["linear"] += own
        elif isinstance(module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
            counts["norm"] += own
        else:
            counts["other"] += own
    return counts
