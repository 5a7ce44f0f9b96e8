"""Apply a plan as masks: the planned channels are zeroed where they are produced, reversibly.

A mask multiplies the producing layers' weights, biases and BatchNorm affine parameters through
``torch.nn.utils.parametrize``, so the original values stay underneath: :meth:`ChannelMasks.remove`
restores them, :meth:`ChannelMasks.bake` writes the zeros into the weights. Gradients of masked
entries are zero while the mask is on, so training-time methods can keep a mask in place.

With BatchNorm in eval mode, a zeroed producer makes the channel exactly zero downstream, so the
masked model computes what the physically pruned model computes. A plan's ``input_scales`` are
applied the same way (a parametrization multiplying the consumer's weight along its input
dimension), so they are reversible too, and surgery applies the same factors to the weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from secateurs.pruning.graph import OUT, ChannelGraph
from secateurs.pruning.plan import PruningPlan, input_scale_vector

MASKED_TYPES = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)


class _Mask(nn.Module):
    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, value: Tensor) -> Tensor:
        return value * self.mask


def _channel_mask(parameter: Tensor, indices: list[int], dim: int) -> Tensor:
    shape = [1] * parameter.ndim
    shape[dim] = parameter.shape[dim]
    mask = torch.ones(shape, dtype=parameter.dtype, device=parameter.device)
    index = torch.tensor(sorted(set(indices)), dtype=torch.long)
    mask.index_fill_(dim, index, 0.0)
    return mask


class ChannelMasks:
    """The masks of one plan on one model; remove or bake them when done."""

    def __init__(self, graph: ChannelGraph, plan: PruningPlan) -> None:
        self.masked: list[tuple[nn.Module, str]] = []
        plan.validate(graph)
        per_module: dict[nn.Module, set[int]] = {}
        for group in graph.groups:
            removed = set(plan.removals.get(group.root, []))
            if not removed:
                continue
            for member in group.layers(OUT, MASKED_TYPES):
                hits = {
                    i
                    for i, r in zip(member.indices, member.root_indices, strict=True)
                    if r in removed
                }
                per_module.setdefault(member.module, set()).update(hits)
        for module, indices in per_module.items():
            dim = 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
            for name in ("weight", "bias"):
                parameter = getattr(module, name, None)
                if isinstance(parameter, nn.Parameter):
                    mask = _channel_mask(parameter, list(indices), dim if name == "weight" else 0)
                    parametrize.register_parametrization(module, name, _Mask(mask))
                    self.masked.append((module, name))
        for layer, factors in plan.input_scales.items():
            if factors:
                module = graph.module(layer)
                scale = input_scale_vector(module, factors).detach()
                parametrize.register_parametrization(module, "weight", _Mask(scale))
                self.masked.append((module, "weight"))

    def remove(self) -> None:
        """Take the masks off; the weights are as they were before."""
        self._unregister(leave_zeros=False)

    def bake(self) -> None:
        """Take the masks off, leaving the masked entries zero in the weights."""
        self._unregister(leave_zeros=True)

    def _unregister(self, leave_zeros: bool) -> None:
        for module, name in self.masked:
            if parametrize.is_parametrized(module, name):
                parametrize.remove_parametrizations(module, name, leave_parametrized=leave_zeros)
        self.masked.clear()


def apply_masks(graph: ChannelGraph, plan: PruningPlan) -> ChannelMasks:
    """Mask ``plan``'s channels in ``graph.model`` (see :class:`ChannelMasks`)."""
    return ChannelMasks(graph, plan)
