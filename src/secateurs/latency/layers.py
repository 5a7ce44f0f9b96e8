"""The layers a latency table covers: every convolution and linear layer whose input or output
channels a prunable group can shrink, each with its *shape* (everything but the two widths, the
table's key) and the groups that set its widths (as :mod:`secateurs.pruning.cost_model` links
layers to groups for MACs)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from secateurs.device import model_device
from secateurs.pruning.graph import IN, OUT, ChannelGraph

GRID = 16  # candidate widths per dimension of a table: every ceil(C / GRID)-th width, and C


def candidate_widths(size: int, grid: int = GRID) -> list[int]:
    """The widths a table measures for a dimension of ``size`` channels."""
    step = max(1, math.ceil(size / grid))
    return sorted({*range(step, size + 1, step), size})


@dataclass(frozen=True)
class LayerShape:
    """A layer's configuration at its full widths; ``key`` names it in the table."""

    kind: str  # "conv2d" or "linear"
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    depthwise: bool = False
    spatial: tuple[int, ...] = ()  # the input's height and width

    @property
    def key(self) -> str:
        if self.kind == "linear":
            return f"linear {self.in_channels}->{self.out_channels}"

        def dims(values: tuple[int, ...]) -> str:
            return "x".join(map(str, values))

        return (
            f"conv{'-dw' if self.depthwise else ''} {self.in_channels}->{self.out_channels} "
            f"k{dims(self.kernel)} s{dims(self.stride)} p{dims(self.padding)} "
            f"d{dims(self.dilation)} @{dims(self.spatial)}"
        )

    def module(self, in_channels: int, out_channels: int) -> nn.Module:
        """The layer at these widths as the runtime runs it: convolution, BatchNorm, ReLU (fused
        by onnxruntime, three kernels in eager), or the linear layer."""
        if self.kind == "linear":
            return nn.Linear(in_channels, out_channels)
        groups = out_channels if self.depthwise else 1
        conv = nn.Conv2d(
            in_channels, out_channels, self.kernel, self.stride, self.padding, self.dilation,
            groups=groups, bias=False,
        )  # fmt: skip
        return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU())

    def input_shape(self, batch: int, in_channels: int) -> tuple[int, ...]:
        return (batch, in_channels, *self.spatial)

    def macs(self, in_channels: int, out_channels: int) -> float:
        """Multiply-accumulates per image at these widths: what narrowing the layer saves inside
        its model, where no table can price it (the allocation's fallback, and its search axis)."""
        if self.kind == "linear":
            return float(in_channels * out_channels)
        positions = math.prod(
            (size + 2 * pad - dil * (k - 1) - 1) // step + 1
            for size, pad, dil, k, step in zip(
                self.spatial, self.padding, self.dilation, self.kernel, self.stride, strict=False
            )
        )
        per_output = math.prod(self.kernel) * (1 if self.depthwise else in_channels)
        return float(out_channels * per_output * positions)


@dataclass
class Link:
    """Group ``root``'s channels ``root_index`` are the layer's ``direction`` channels."""

    root: str
    direction: str
    root_index: Tensor


@dataclass
class TabledLayer:
    name: str
    shape: LayerShape
    links: list[Link] = field(default_factory=list)

    def varies(self, direction: str) -> bool:
        return any(link.direction == direction for link in self.links)

    def grid(self, direction: str, grid: int = GRID) -> list[int]:
        """The widths measured along ``direction`` (the full width alone if it never changes)."""
        size = self.shape.out_channels if direction == OUT else self.shape.in_channels
        if self.shape.depthwise or self.varies(direction):
            return candidate_widths(size, grid)
        return [size]

    def points(self, grid: int = GRID) -> list[tuple[int, int]]:
        """Every (in, out) width pair the table needs for this layer."""
        if self.shape.depthwise:
            return [(w, w) for w in self.grid(OUT, grid)]
        return [(i, o) for i in self.grid(IN, grid) for o in self.grid(OUT, grid)]

    def widths(self, removed: Mapping[str, Tensor]) -> tuple[int, int]:
        """(in, out) channels this layer keeps when ``removed[root]`` masks each group."""
        lost = {IN: 0, OUT: 0}
        for link in self.links:
            mask = removed.get(link.root)
            if mask is not None:
                lost[link.direction] += int(mask[link.root_index].sum())
        kept_in = self.shape.in_channels - lost[IN]
        kept_out = self.shape.out_channels - lost[OUT]
        if self.shape.depthwise:  # one set of channels, listed as input and output
            kept_in = kept_out = min(kept_in, kept_out)
        return kept_in, kept_out

    def macs(self, removed: Mapping[str, Tensor]) -> float:
        return self.shape.macs(*self.widths(removed))


def _shape(module: nn.Module, spatial: tuple[int, ...]) -> LayerShape | None:
    if isinstance(module, nn.Linear):
        return LayerShape("linear", module.in_features, module.out_features)
    if not isinstance(module, nn.Conv2d) or isinstance(module.padding, str):
        return None
    depthwise = module.groups == module.in_channels == module.out_channels > 1
    if module.groups > 1 and not depthwise:
        return None
    return LayerShape(
        "conv2d", module.in_channels, module.out_channels, tuple(module.kernel_size),
        tuple(module.stride), tuple(module.padding), tuple(module.dilation), depthwise, spatial,
    )  # fmt: skip


def _input_spatial(model: nn.Module, input_size: tuple[int, ...]) -> dict[nn.Module, tuple]:
    found: dict[nn.Module, tuple] = {}

    def record(module: nn.Module, inputs: tuple, _output: Tensor) -> None:
        found.setdefault(module, tuple(inputs[0].shape[2:]))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.randn(1, *input_size, device=model_device(model)))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return found


def tabled_layers(graph: ChannelGraph) -> list[TabledLayer]:
    """The layers of ``graph`` whose widths pruning can change, in the model's order. Layers
    that are not convolutions or linear layers (BatchNorm, additions, pooling) are part of the
    model's fixed cost (see :mod:`secateurs.latency.predict`)."""
    spatial = _input_spatial(graph.model, graph.input_size)
    layers: dict[nn.Module, TabledLayer] = {}
    for group in graph.prunable_groups:
        for member in group.members:
            module = member.module
            if module not in layers:
                shape = _shape(module, spatial.get(module, ()))
                if shape is None:
                    continue
                layers[module] = TabledLayer(member.name, shape)
            index = torch.tensor(member.root_indices, dtype=torch.long)
            layers[module].links.append(Link(group.root, member.direction, index))
    order = {module: position for position, module in enumerate(graph.model.modules())}
    return sorted(layers.values(), key=lambda layer: order[graph.module(layer.name)])
