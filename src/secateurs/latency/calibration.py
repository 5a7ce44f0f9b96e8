"""The correction from a latency table to the whole model, fitted on pruned models measured whole.

A layer timed alone is not the layer inside its model. In onnxruntime a convolution alone pays
for converting its input to the runtime's blocked layout and back; inside the model only the
graph's ends do, and a width off the block size drops the layer (and its neighbours) out of the
blocked path. Measured on ResNet-20 and ResNet-56 (docs/results/latency.md), the table alone
predicted 0.3-0.4 too little of the pruned/dense ratio in onnxruntime (median error 31-39%); in
eager it was within 1.5-4% on ResNet-20 (14-15% on ResNet-56, most of which came from timing
models with cold caches, since fixed).

The correction is affine in two features of a plan, fitted by least squares on
:func:`calibration_plans` measured whole, interleaved with the dense model, and constrained to
predict the dense model exactly (``a = 1 - b``):

``measured ratio - 1 ~ b * (table ratio - 1) + c * misaligned share``

with ``table ratio`` the table's prediction over the dense latency, and ``misaligned share`` the
fraction of the dense tabled time in layers left at a width the table does not call efficient
(:meth:`LatencyModel.misaligned_share`). The calibration plans are drawn with a fixed seed of
their own, so a validation that draws other plans tests the correction on plans it was not fitted
on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.plan import PruningPlan

CALIBRATION_SEED = 20261201  # not the seed a validation draws its plans with
FRACTIONS = (0.3, 0.5, 0.7, 0.85)  # uniform keep fractions measured, exact and efficient
RANDOM_PLANS = 8  # and plans keeping a random fraction in [0.25, 1] of each group
MIN_SLOPE = 0.1  # a fitted slope below this is noise (fitted here: 0.83-1.73)


@dataclass(frozen=True)
class Calibration:
    """``ratio = a + b * table_ratio + c * misaligned_share`` (identity: 0, 1, 0)."""

    a: float = 0.0
    b: float = 1.0
    c: float = 0.0

    def ratio(self, table_ratio: float, misaligned_share: float) -> float:
        return self.a + self.b * table_ratio + self.c * misaligned_share


def fit(points: Sequence[tuple[float, float, float]]) -> Calibration:
    """Least squares over ``(table ratio, misaligned share, measured ratio)`` points, through the
    dense model's (1, 0, 1); a feature that never varies gets no weight (the minimum-norm
    solution). A slope under ``MIN_SLOPE`` is noise: the table alone is kept."""
    data = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    table, share, measured = data[:, 0], data[:, 1], data[:, 2]
    features = np.stack([table - 1, share], axis=1)
    solution, *_ = np.linalg.lstsq(features, measured - 1, rcond=None)
    b, c = (float(value) for value in solution)
    if b < MIN_SLOPE:  # pruning would look free or costly: keep the table's own prediction
        return Calibration()
    return Calibration(1 - b, b, c)


def _keep_first(graph: ChannelGraph, kept: dict[str, int]) -> PruningPlan:
    """Which channels go does not change a latency: remove each group's first ones."""
    return PruningPlan({g.root: list(range(g.size - kept[g.root])) for g in graph.prunable_groups})


def calibration_plans(graph: ChannelGraph, efficient: dict[str, list[int]]) -> list[PruningPlan]:
    """Plans spanning what allocations produce: uniform fractions at exact widths, the same
    snapped down to each group's efficient widths, and random fractions per group."""
    plans = []
    for fraction in FRACTIONS:
        exact = {g.root: max(1, round(g.size * fraction)) for g in graph.prunable_groups}
        plans.append(_keep_first(graph, exact))
        snapped = {}
        for group in graph.prunable_groups:
            widths = efficient.get(group.root, [group.size])
            fitting = [w for w in widths if w <= exact[group.root]]
            snapped[group.root] = max(fitting) if fitting else min(widths)
        plans.append(_keep_first(graph, snapped))
    generator = torch.Generator().manual_seed(CALIBRATION_SEED)
    for _ in range(RANDOM_PLANS):
        fractions = torch.rand(len(graph.prunable_groups), generator=generator) * 0.75 + 0.25
        drawn = {
            g.root: max(1, round(g.size * float(f)))
            for g, f in zip(graph.prunable_groups, fractions, strict=True)
        }
        plans.append(_keep_first(graph, drawn))
    return plans
