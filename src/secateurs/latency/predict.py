"""A whole model's latency predicted from a plan: the measured latency of the dense model, less
what each tabled layer saves at its pruned widths.

``predicted(plan) = fixed + sum over tabled layers of table(layer at its kept widths)``, where
``fixed = measured(dense) - sum of table(layer at full widths)``: the operators no table covers
(additions, pooling, the runtime's per-call overhead) are taken as not shrinking, and the per-layer
timings' own overhead cancels in the differences. The dense model is predicted exactly by
construction; a pruned one is validated against measurement in ``benchmarks/latency_model.py``.
As :mod:`secateurs.pruning.cost_model` does for MACs, a layer's widths come from the groups
linked to it, so a plan is predicted without doing the surgery.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from secateurs.latency.layers import GRID, TabledLayer, candidate_widths
from secateurs.latency.table import LatencyTable, efficient_widths
from secateurs.pruning.graph import ChannelGraph
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

    def __post_init__(self) -> None:
        full = {}
        self.fixed_ms = self.dense_ms - sum(self.layer_ms(layer, full) for layer in self.layers)

    def layer_ms(self, layer: TabledLayer, removed: Mapping[str, Tensor]) -> float:
        return self.table.lookup(layer, *layer.widths(removed), self.grid)

    def predict(self, removed: Mapping[str, Tensor]) -> float:
        """Milliseconds with ``removed[root]`` (a bool mask per group) gone."""
        return self.fixed_ms + sum(self.layer_ms(layer, removed) for layer in self.layers)

    def predict_plan(self, graph: ChannelGraph, plan: PruningPlan) -> float:
        return self.predict(removal_masks(graph, plan))

    def ratio(self, graph: ChannelGraph, plan: PruningPlan) -> float:
        """Predicted latency after / before."""
        return self.predict_plan(graph, plan) / self.dense_ms

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
