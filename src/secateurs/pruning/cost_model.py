"""Predict a pruned model's MACs and parameters without doing the surgery.

Torch-Pruning's counter gives each layer's MACs and parameters once, on the unpruned model. A
layer's cost then scales with the fraction of its input and output channels that remain:
convolutions and linear layers by (kept in / in) x (kept out / out), depthwise convolutions and
per-channel layers (BatchNorm) by the kept fraction alone. Costs outside any group are fixed. The
prediction matches surgery to ~1e-5 on the zoo; allocation checks the result by real surgery.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch_pruning as tp
from torch import Tensor, nn

from secateurs.device import model_device
from secateurs.pruning.graph import IN, OUT, ChannelGraph


def _channels(module: nn.Module, direction: str) -> int | None:
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels if direction == OUT else module.in_channels
    if isinstance(module, nn.Linear):
        return module.out_features if direction == OUT else module.in_features
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.num_features
    return None


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and module.groups == module.out_channels > 1


class CostModel:
    """``predict(removed)`` -> {"macs", "params"} for ``removed[root]`` = bool mask of channels."""

    def __init__(self, graph: ChannelGraph) -> None:
        model = graph.model
        was_training = model.training
        with torch.no_grad():
            macs, params, layer_macs, layer_params = tp.utils.count_ops_and_params(
                model.eval(),
                torch.randn(1, *graph.input_size, device=model_device(model)),
                layer_wise=True,
            )
        model.train(was_training)
        self.macs, self.params = int(macs), int(params)
        self.layer_cost: dict[nn.Module, tuple[float, float]] = {}
        for module in model.modules():
            if next(module.children(), None) is None:
                cost = (float(layer_macs.get(module) or 0), float(layer_params.get(module) or 0))
                if cost != (0.0, 0.0):
                    self.layer_cost[module] = cost
        # (group root, module, direction, channel count of the module, root index tensor)
        self.links: list[tuple[str, nn.Module, str, int, Tensor]] = []
        for group in graph.groups:
            for member in group.members:
                channels = _channels(member.module, member.direction)
                if member.module in self.layer_cost and channels:
                    root_index = torch.tensor(member.root_indices, dtype=torch.long, device="cpu")
                    self.links.append(
                        (group.root, member.module, member.direction, channels, root_index)
                    )

    def predict(self, removed: Mapping[str, Tensor]) -> dict[str, float]:
        lost: dict[nn.Module, dict[str, float]] = {}
        for root, module, direction, channels, root_index in self.links:
            mask = removed.get(root)
            if mask is None:
                continue
            count = float(mask[root_index].sum())
            if count:
                shares = lost.setdefault(module, {OUT: 0.0, IN: 0.0})
                shares[direction] += count / channels
        macs, params = float(self.macs), float(self.params)
        for module, shares in lost.items():
            keep_out, keep_in = 1 - shares[OUT], 1 - shares[IN]
            if _is_depthwise(module) or isinstance(module, nn.modules.batchnorm._BatchNorm):
                factor = min(keep_out, keep_in)  # one set of channels, listed once or twice
            else:
                factor = keep_out * keep_in
            base_macs, base_params = self.layer_cost[module]
            macs -= base_macs * (1 - factor)
            params -= base_params * (1 - factor)
        return {"macs": macs, "params": params}
