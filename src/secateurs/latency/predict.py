"""A whole model's latency predicted from a plan: the measured latency of the dense model, less
what each tabled layer saves at its pruned widths, corrected by a calibration fitted on pruned
models measured whole (:mod:`secateurs.latency.calibration`).

``table(plan) = fixed + sum over tabled layers of table(layer at its kept widths)``, where
``fixed = measured(dense) - sum of table(layer at full widths)``: the operators no table covers
(additions, pooling, the runtime's per-call overhead) are taken as not shrinking, and the per-layer
timings' own overhead cancels in the differences. The prediction is
``dense x calibration(table(plan) / dense, misaligned share)``; the calibration is fitted
through the dense model's point, so the dense model is predicted exactly, and pruned ones are
validated against measurement in ``benchmarks/latency_model.py``. As
:mod:`secateurs.pruning.cost_model` does for MACs, a layer's widths come from the groups linked to
it, so a plan is predicted without doing the surgery.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from secateurs.latency.calibration import Calibration
from secateurs.latency.layers import GRID, TabledLayer, candidate_widths
from secateurs.latency.table import LatencyTable, efficient_widths
from secateurs.pruning.graph import IN, OUT, ChannelGraph
from secateurs.pruning.plan import PruningPlan


def model_signature(graph: ChannelGraph) -> str:
    """Names a dense model's structure (its layers' configuration and the input size)."""
    text = f"{graph.input_size} {graph.model!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def removal_masks(graph: ChannelGraph, plan: PruningPlan) -> dict[str, Tensor]:
    masks = {}
    for group in graph.prunable_groups:
        mask = torch.zeros(group.size, dtype=torch.bool)
        mask[plan.removals.get(group.root, [])] = True
        masks[group.root] = mask
    return masks


def first_removed(size: int, kept: int) -> Tensor:
    """A mask removing ``size - kept`` channels (which ones does not change a count)."""
    return torch.arange(size) < size - kept


@dataclass
class LatencyModel:
    """Predicts one dense model's pruned latencies (ms) in one backend at one batch size."""

    layers: list[TabledLayer]
    table: LatencyTable
    dense_ms: float  # measured
    grid: int = GRID
    calibration: Calibration = field(default_factory=Calibration)

    def __post_init__(self) -> None:
        full: dict[str, Tensor] = {}
        self.full_ms = [self.layer_ms(layer, full) for layer in self.layers]
        self.fixed_ms = self.dense_ms - sum(self.full_ms)
        self._efficient = [self._layer_efficient(layer) for layer in self.layers]

    def layer_ms(self, layer: TabledLayer, removed: Mapping[str, Tensor]) -> float:
        return self.table.lookup(layer, *layer.widths(removed), self.grid)

    def table_ms(self, removed: Mapping[str, Tensor]) -> float:
        """The table's own prediction (milliseconds), before the calibration."""
        return self.fixed_ms + sum(self.layer_ms(layer, removed) for layer in self.layers)

    def misaligned_share(self, removed: Mapping[str, Tensor]) -> float:
        """The share of the dense tabled time in layers whose kept width (in or out, where a
        group changes it) is not one the table calls efficient for that layer."""
        total = sum(self.full_ms) or 1.0
        share = 0.0
        for layer, ms, efficient in zip(self.layers, self.full_ms, self._efficient, strict=True):
            kept_in, kept_out = layer.widths(removed)
            if kept_in not in efficient[IN] or kept_out not in efficient[OUT]:
                share += ms
        return share / total

    def predict(self, removed: Mapping[str, Tensor]) -> float:
        """Milliseconds with ``removed[root]`` (a bool mask per group) gone."""
        return self.calibrated_ms(self.table_ms(removed), removed)

    def calibrated_ms(self, table_ms: float, removed: Mapping[str, Tensor]) -> float:
        """The calibrated prediction from the table's (``table_ms``, for these masks)."""
        ratio = self.calibration.ratio(table_ms / self.dense_ms, self.misaligned_share(removed))
        return self.dense_ms * max(ratio, 1e-3)

    def predict_plan(self, graph: ChannelGraph, plan: PruningPlan) -> float:
        return self.predict(removal_masks(graph, plan))

    def ratio(self, graph: ChannelGraph, plan: PruningPlan) -> float:
        """Predicted latency after / before."""
        return self.predict_plan(graph, plan) / self.dense_ms

    def _layer_efficient(self, layer: TabledLayer) -> dict[str, set[int]]:
        """Per direction, the measured widths at which this layer alone (the other width full)
        is faster than at every wider one; a fixed direction keeps its full width only."""
        found = {}
        for direction in (IN, OUT):
            widths = layer.grid(direction, self.grid)
            if len(widths) == 1:
                found[direction] = set(widths)
                continue
            full_in, full_out = layer.shape.in_channels, layer.shape.out_channels
            pairs = {w: (w, full_out) if direction == IN else (full_in, w) for w in widths}
            costs = {w: self.table.lookup(layer, *pair, self.grid) for w, pair in pairs.items()}
            found[direction] = set(efficient_widths(costs))
        if layer.shape.depthwise:  # one set of channels, listed as input and output
            found[IN] = found[OUT]
        return found

    def efficient_widths(self, graph: ChannelGraph) -> dict[str, list[int]]:
        """Per prunable group with a tabled layer, the candidate widths at which that group's
        layers (the rest of the model at full width) are faster than at every larger width."""
        found = {}
        for group in graph.prunable_groups:
            linked = [
                layer for layer in self.layers if any(k.root == group.root for k in layer.links)
            ]
            if not linked:
                continue
            costs = {}
            for width in candidate_widths(group.size, self.grid):
                removed = {group.root: first_removed(group.size, width)}
                costs[width] = sum(self.layer_ms(layer, removed) for layer in linked)
            found[group.root] = efficient_widths(costs)
        return found
