"""A pruning plan: which channels of which group go, and optionally how the layers reading the
kept channels are rescaled. Methods produce plans; masks and surgery apply them. Plans are plain
data (JSON) so that reports and saved models can carry them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.pruning.graph import ChannelGraph


@dataclass
class PruningPlan:
    """``removals[root]``: sorted channel indices (group numbering) to remove from that group.

    ``input_scales[layer][i]``: a factor multiplying the weights that layer ``layer`` (a
    convolution with ``groups=1`` or a linear layer, by module name) applies to its input channel
    ``i`` (the layer's own numbering, before any removal). Masks and surgery both apply it before
    removing anything, so a method that reweights what survives (PFP's importance sampling) goes
    through the engine like any other. Empty for most methods.
    """

    removals: dict[str, list[int]] = field(default_factory=dict)
    input_scales: dict[str, dict[int, float]] = field(default_factory=dict)

    def validate(self, graph: ChannelGraph) -> PruningPlan:
        """Check every group exists, is prunable, and keeps at least one channel."""
        for root, indices in self.removals.items():
            group = graph.group(root)
            if not indices:
                continue
            if not group.prunable:
                raise SecateursError(f"cannot prune group {root}: {group.reason}")
            if min(indices) < 0 or max(indices) >= group.size:
                raise SecateursError(
                    f"plan removes channel {max(indices)} of {root}, which has {group.size}"
                )
            if len(set(indices)) >= group.size:
                raise SecateursError(f"plan would empty layer {root} ({group.size} channels)")
        for layer, factors in self.input_scales.items():
            module = graph.module(layer)
            if not input_scalable(module):
                raise SecateursError(
                    f"plan rescales the inputs of {layer} ({type(module).__name__}); only "
                    "convolutions with groups=1 and linear layers can be rescaled"
                )
            width = module.weight.shape[1]
            if factors and (min(factors) < 0 or max(factors) >= width):
                raise SecateursError(f"plan rescales input {max(factors)} of {layer} ({width})")
        return self

    def kept(self, graph: ChannelGraph) -> dict[str, int]:
        """Channels each group keeps."""
        return {g.root: g.size - len(self.removals.get(g.root, [])) for g in graph.groups}

    @property
    def removed_count(self) -> int:
        return sum(len(indices) for indices in self.removals.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "removals": {root: list(map(int, idx)) for root, idx in self.removals.items() if idx},
            "input_scales": {
                layer: {str(int(i)): float(f) for i, f in sorted(factors.items())}
                for layer, factors in self.input_scales.items()
                if factors
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PruningPlan:
        """Reads :meth:`to_json`'s output, and the older flat ``{root: indices}`` form."""
        if isinstance(data.get("removals"), dict):
            removals, scales = data["removals"], data.get("input_scales", {})
        else:
            removals, scales = data, {}
        return cls(
            {root: sorted(int(i) for i in idx) for root, idx in removals.items()},
            {
                layer: {int(i): float(f) for i, f in factors.items()}
                for layer, factors in scales.items()
            },
        )


def input_scalable(module: nn.Module) -> bool:
    """Layers whose input channels a plan may rescale: dense convolutions and linear layers."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.groups == 1 and not isinstance(module, nn.modules.conv._ConvTransposeNd)
    return isinstance(module, nn.Linear)


def input_scale_vector(module: nn.Module, factors: dict[int, float]) -> Tensor:
    """The factors as a tensor broadcasting over ``module.weight`` along its input dimension."""
    weight = module.weight
    shape = [1] * weight.ndim
    shape[1] = weight.shape[1]
    vector = torch.ones(weight.shape[1], dtype=weight.dtype, device=weight.device)
    if factors:
        index = torch.tensor(list(factors), dtype=torch.long, device=weight.device)
        values = torch.tensor(list(factors.values()), dtype=weight.dtype, device=weight.device)
        vector[index] = values
    return vector.view(shape)
