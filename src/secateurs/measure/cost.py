"""Multiply-accumulate operations (MACs) and parameter counts, by Torch-Pruning's op counter.

MACs count one multiply-add as one operation, for one image; many papers call this "FLOPs".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn


def example_input(input_size: Sequence[int], batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, *input_size)


def count_cost(model: nn.Module, input_size: Sequence[int]) -> dict[str, int]:
    """``macs`` for one image of ``input_size`` (C, H, W) and ``params`` of ``model``.

    Torch-Pruning's counter sees only standard layers; a compact column convolution (SPP's
    ``CompactConv2d``, found by its ``kept_columns``) computes with functional calls it cannot
    see, so its MACs are added here: kept columns x output channels x output positions."""
    was_training = model.training
    model.eval()
    compact_macs: list[int] = []

    def count_compact(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        positions = output.shape[-2] * output.shape[-1]
        compact_macs.append(module.kept_columns * module.out_channels * positions)

    compact = [m for m in model.modules() if hasattr(m, "kept_columns")]
    handles = [m.register_forward_hook(count_compact) for m in compact]
    try:
        with torch.no_grad():
            macs, params = tp.utils.count_ops_and_params(model, example_input(input_size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    # the counter runs the model once: one entry per compact layer
    return {"macs": int(macs) + sum(compact_macs[: len(compact)]), "params": int(params)}


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
