"""The weight groups SPP gives a pruning probability to, one object per prunable layer.

Three granularities:

- ``"column"`` (the paper's): a convolution's weight (C_out, C_in/g, kh, kw) seen as the im2col
  matrix C_out x (C_in/g * kh * kw); one group is one column, i.e. one (input channel, ky, kx)
  position across all the filters of a convolution group. A grouped convolution has its columns
  per group (g * C_in/g * kh * kw groups in all); depthwise convolutions (one input channel per
  group) are skipped: a column there is a single weight, and removing it saves one multiply per
  output pixel with no dense GEMM to shrink.
- ``"input_channel"``: all kh * kw columns of one input channel together (the authors' variant).
- ``"channel"``: the engine's coupled channel groups (:class:`ChannelGraph`): a group is one
  output channel of every layer tied to it, so residual streams need no special case. Its score
  is the L1 norm of every filter producing it, summed over the producing layers.

Each object scores its groups (L1 norm, float64) and turns a keep vector (bool, one per group) into
multiplicative masks for the parameters it touches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.pruning.channel_scores import producing_layers, scatter
from secateurs.pruning.compaction.layers import input_layers, is_depthwise
from secateurs.pruning.graph import OUT, ChannelGraph, ChannelGroup
from secateurs.pruning.masks import MASKED_TYPES

GRANULARITIES = ("column", "input_channel", "channel")
ParameterMask = tuple[nn.Parameter, Tensor]  # a parameter and a mask broadcasting over it


class WeightGroups:
    """A layer's prunable groups: ``size`` of them, named ``name``."""

    name: str
    size: int

    def scores(self) -> Tensor:
        """L1 norm of each group's weights (float64, ``size``)."""
        raise NotImplementedError

    def masks(self, keep: Tensor) -> list[ParameterMask]:
        """Masks (parameter dtype, 1 = kept) zeroing the groups where ``keep`` is False."""
        raise NotImplementedError

    def statistics(self, keep: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Running statistics (BatchNorm buffers) of whole masked channels, each with its bool
        keep per entry: a masked channel's statistics must not learn from the zeros it outputs
        while masked. Empty unless a group is a whole channel."""
        return []


class ConvColumns(WeightGroups):
    """Columns of one convolution (``per_channel``: whole input channels of kh * kw columns)."""

    def __init__(self, name: str, conv: nn.Conv2d, per_channel: bool = False) -> None:
        if is_depthwise(conv):
            raise SecateursError(f"{name} is a depthwise convolution: SPP skips it")
        self.name, self.conv, self.per_channel = name, conv, per_channel
        out_channels, in_per_group, kh, kw = conv.weight.shape
        self.grouped_shape = (conv.groups, out_channels // conv.groups, in_per_group, kh, kw)
        positions = 1 if per_channel else kh * kw
        self.size = conv.groups * in_per_group * positions

    def scores(self) -> Tensor:
        weight = self.conv.weight.detach().double().view(self.grouped_shape)
        columns = weight.abs().sum(1)  # (g, C_in/g, kh, kw)
        if self.per_channel:
            columns = columns.sum((-2, -1))
        return columns.reshape(-1).cpu()

    def column_keep(self, keep: Tensor) -> Tensor:
        """The keep vector as one flag per column, shaped (g, C_in/g, kh, kw)."""
        groups, _, in_per_group, kh, kw = self.grouped_shape
        if self.per_channel:
            return keep.view(groups, in_per_group, 1, 1).expand(groups, in_per_group, kh, kw)
        return keep.view(groups, in_per_group, kh, kw)

    def masks(self, keep: Tensor) -> list[ParameterMask]:
        weight = self.conv.weight
        columns = self.column_keep(keep.to(weight.device))
        full = columns.unsqueeze(1).expand(self.grouped_shape).reshape(weight.shape)
        return [(weight, full.to(weight.dtype))]


class CoupledChannels(WeightGroups):
    """One coupled channel group of the engine: its producers' weights, biases and BatchNorms."""

    def __init__(self, group: ChannelGroup) -> None:
        self.name, self.group, self.size = group.root, group, group.size

    def scores(self) -> Tensor:
        total = torch.zeros(self.size, dtype=torch.float64, device="cpu")
        for member in producing_layers(self.group):
            weight = member.module.weight.detach()
            total += scatter(self.group, member, weight.abs().flatten(1).sum(1)).cpu()
        return total

    def masks(self, keep: Tensor) -> list[ParameterMask]:
        found = []
        for member in self.group.layers(OUT, MASKED_TYPES):
            if isinstance(member.module, nn.modules.conv._ConvTransposeNd):
                raise SecateursError(f"{member.name}: transposed convolutions are not supported")
            for parameter_name in ("weight", "bias"):
                parameter = getattr(member.module, parameter_name, None)
                if not isinstance(parameter, nn.Parameter):
                    continue
                channel = torch.ones(parameter.shape[0], dtype=torch.bool, device=keep.device)
                channel[member.indices] = keep[member.root_indices]
                shape = [parameter.shape[0]] + [1] * (parameter.ndim - 1)
                found.append((parameter, channel.view(shape).to(parameter)))
        return found

    def statistics(self, keep: Tensor) -> list[tuple[Tensor, Tensor]]:
        found = []
        for member in self.group.layers(OUT, MASKED_TYPES):
            module = member.module
            if not isinstance(module, nn.modules.batchnorm._BatchNorm):
                continue
            if module.running_mean is None or module.running_var is None:
                continue
            channel = torch.ones(module.num_features, dtype=torch.bool, device=keep.device)
            channel[member.indices] = keep[member.root_indices]
            channel = channel.to(module.running_mean.device)
            found += [(module.running_mean, channel), (module.running_var, channel)]
        return found


def find_layers(
    model: nn.Module,
    input_size: Sequence[int],
    granularity: str,
    names: Sequence[str] | None = None,
    skip_input_layer: bool = True,
) -> list[WeightGroups]:
    """The prunable layers of ``model`` at ``granularity``, in module order.

    By default every 2-D convolution but depthwise ones and the one reading the image (its few
    input channels carry the whole input); ``names`` picks convolutions (or channel-group roots)
    explicitly. Layers with a single group are left out.
    """
    if granularity not in GRANULARITIES:
        raise SecateursError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    if granularity == "channel":
        graph = ChannelGraph(model, input_size)
        layers: list[WeightGroups] = [CoupledChannels(g) for g in graph.prunable_groups]
    else:
        skipped = input_layers(model, input_size) if skip_input_layer and names is None else set()
        layers = [
            ConvColumns(name, module, per_channel=granularity == "input_channel")
            for name, module in model.named_modules()
            if isinstance(module, nn.Conv2d) and not is_depthwise(module) and module not in skipped
        ]
    if names is not None:
        by_name = {layer.name: layer for layer in layers}
        missing = [name for name in names if name not in by_name]
        if missing:
            raise SecateursError(
                f"not prunable by SPP at {granularity} granularity: {', '.join(missing)}"
            )
        layers = [by_name[name] for name in names]
    return [layer for layer in layers if layer.size > 1]
