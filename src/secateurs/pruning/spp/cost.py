"""MACs of column-pruned convolutions (the paper's count), and per-layer ratios for a MACs target.

SPP reports the theoretical cost of the convolutions with only their kept rows and columns:

    MACs_l = C_out * C_in/g * kh * kw * H_out * W_out * (1 - (pr + pc - pr * pc))

with ``pr`` / ``pc`` the pruned fractions of the im2col matrix's rows (filters) and columns. This
is what a compacted convolution could at best save; whether it does is measured separately
(:mod:`secateurs.pruning.spp.compact`).

A global MACs target (kept ratio of the whole model's MACs, as ``--target-macs`` everywhere in
secateurs) is split into one uniform pruned ratio R for every SPP layer, found by bisection so that
the predicted MACs meet the target: columns for column/input-channel granularity (the formula
above with pr = 0: rows freed by compaction only lower the cost further), the engine's
:class:`CostModel` for channel granularity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.measurement.cost import count_cost
from secateurs.pruning.compaction.layers import conv_output_sizes
from secateurs.pruning.cost_model import CostModel
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.spp.groups import ConvColumns, CoupledChannels, WeightGroups


def dense_conv_macs(weight_shape: Sequence[int], output_size: tuple[int, int]) -> int:
    """C_out * C_in/g * kh * kw * H_out * W_out: one image, one multiply-add per weight use."""
    return math.prod(weight_shape) * output_size[0] * output_size[1]


def pruned_fractions(keep: Tensor, groups: int) -> tuple[float, float]:
    """(pr, pc) of a keep mask shaped like a conv weight (C_out, C_in/g, kh, kw)."""
    out_channels = keep.shape[0]
    grouped = keep.bool().reshape(groups, out_channels // groups, -1)
    rows = ~grouped.any(2)  # (g, C_out/g)
    columns = ~grouped.any(1)  # (g, C_in/g * kh * kw)
    return float(rows.float().mean()), float(columns.float().mean())


def spp_macs(
    model: nn.Module, masks: Mapping[str, Tensor], input_size: Sequence[int]
) -> dict[str, Any]:
    """The model's MACs with each masked convolution counted at its kept rows and columns.

    ``masks[name]``: a keep mask broadcasting to convolution ``name``'s weight (bool or 0/1).
    Returns the whole model's ``dense_macs`` and ``macs`` (Torch-Pruning's counter for the layers
    without a mask) and per layer ``pr``, ``pc``, dense and kept MACs.
    """
    total = count_cost(model, input_size)["macs"]
    sizes = conv_output_sizes(model, input_size)
    layers, saved = {}, 0.0
    for name, keep in masks.items():
        conv = model.get_submodule(name)
        weight_shape = tuple(conv.weight.shape)
        dense = dense_conv_macs(weight_shape, sizes[name])
        pr, pc = pruned_fractions(torch.broadcast_to(keep, weight_shape), conv.groups)
        kept = dense * (1 - (pr + pc - pr * pc))
        saved += dense - kept
        layers[name] = {"pr": pr, "pc": pc, "dense_macs": dense, "macs": kept}
    return {
        "dense_macs": total,
        "macs": total - saved,
        "ratio": (total - saved) / total,
        "layers": layers,
    }


def uniform_ratio(predict: Callable[[float], float], target: float) -> float:
    """The smallest R in [0, 1) with ``predict(R) <= target`` (``predict`` non-increasing)."""
    highest = 1 - 1e-9
    if predict(highest) > target:
        raise SecateursError(
            f"a MACs ratio of {target} is out of reach: pruning every SPP layer as far as "
            f"possible keeps {predict(highest):.4f}"
        )
    if predict(0.0) <= target:
        return 0.0
    low, high = 0.0, highest
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (low, middle) if predict(middle) <= target else (middle, high)
    return high


def ratios_for_macs(
    model: nn.Module, input_size: Sequence[int], layers: Sequence[WeightGroups], target: float
) -> tuple[list[float], float]:
    """One uniform pruned ratio R per layer meeting the kept-MACs ``target``; returns the ratios
    and the predicted kept ratio."""

    def count(ratio: float, size: int) -> int:
        return min(math.ceil(ratio * size - 1e-9), size - 1)

    total = count_cost(model, input_size)["macs"]
    if all(isinstance(layer, ConvColumns) for layer in layers):
        sizes = conv_output_sizes(model, input_size)
        dense = [dense_conv_macs(layer.conv.weight.shape, sizes[layer.name]) for layer in layers]

        def predict(ratio: float) -> float:
            saved = sum(
                macs * count(ratio, layer.size) / layer.size
                for macs, layer in zip(dense, layers, strict=True)
            )
            return (total - saved) / total

    elif all(isinstance(layer, CoupledChannels) for layer in layers):
        cost_model = CostModel(ChannelGraph(model, input_size))

        def predict(ratio: float) -> float:
            removed = {}
            for layer in layers:
                mask = torch.zeros(layer.size, dtype=torch.bool, device="cpu")
                mask[: count(ratio, layer.size)] = True
                removed[layer.name] = mask
            return cost_model.predict(removed)["macs"] / cost_model.macs

    else:
        raise SecateursError("SPP layers of mixed granularity")
    ratio = uniform_ratio(predict, target)
    return [ratio] * len(layers), predict(ratio)
