"""A latency table: milliseconds of each layer shape at candidate (in, out) widths, with linear
interpolation between the measured widths, and the widths where a layer is *efficient*: strictly
faster than at every larger measured width (a width that costs as much as a wider one gives up
channels for nothing; on a CPU runtime that pads channels to its vector width those widths are
the off-multiples)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from secateurs.latency.layers import TabledLayer
from secateurs.pruning.graph import IN, OUT

EFFICIENCY_MARGIN = 0.01  # a width must be this much faster than every wider one to be efficient


def _bracket(grid: Sequence[int], width: int) -> tuple[int, int, float]:
    """The measured widths around ``width`` and its weight on the upper one (clamped)."""
    if width <= grid[0]:
        return grid[0], grid[0], 0.0
    if width >= grid[-1]:
        return grid[-1], grid[-1], 0.0
    upper = bisect.bisect_left(grid, width)
    low, high = grid[upper - 1], grid[upper]
    if high == width:
        return high, high, 0.0
    return low, high, (width - low) / (high - low)


@dataclass
class LatencyTable:
    """``entries[shape key]["in,out"]``: median milliseconds of that layer at those widths."""

    entries: dict[str, dict[str, float]] = field(default_factory=dict)

    def get(self, layer: TabledLayer, in_width: int, out_width: int) -> float | None:
        return self.entries.get(layer.shape.key, {}).get(f"{in_width},{out_width}")

    def put(self, layer: TabledLayer, in_width: int, out_width: int, ms: float) -> None:
        self.entries.setdefault(layer.shape.key, {})[f"{in_width},{out_width}"] = ms

    def missing(self, layer: TabledLayer, grid: int) -> list[tuple[int, int]]:
        return [p for p in layer.points(grid) if self.get(layer, *p) is None]

    def lookup(self, layer: TabledLayer, in_width: int, out_width: int, grid: int) -> float:
        """Milliseconds of ``layer`` at these widths, interpolated between measured ones."""
        if layer.shape.depthwise:
            low, high, weight = _bracket(layer.grid(OUT, grid), out_width)
            return self._at(layer, low, low) * (1 - weight) + self._at(layer, high, high) * weight
        in_low, in_high, a = _bracket(layer.grid(IN, grid), in_width)
        out_low, out_high, b = _bracket(layer.grid(OUT, grid), out_width)
        return (
            self._at(layer, in_low, out_low) * (1 - a) * (1 - b)
            + self._at(layer, in_low, out_high) * (1 - a) * b
            + self._at(layer, in_high, out_low) * a * (1 - b)
            + self._at(layer, in_high, out_high) * a * b
        )

    def _at(self, layer: TabledLayer, in_width: int, out_width: int) -> float:
        found = self.get(layer, in_width, out_width)
        if found is None:
            raise KeyError(f"no timing of {layer.shape.key} at {in_width},{out_width}")
        return found


def efficient_widths(costs: dict[int, float], margin: float = EFFICIENCY_MARGIN) -> list[int]:
    """The widths of ``{width: ms}`` strictly faster (by ``margin``) than every wider one; the
    widest is always efficient."""
    chosen, cheapest_wider = [], float("inf")
    for width in sorted(costs, reverse=True):
        if costs[width] < cheapest_wider * (1 - margin):
            chosen.append(width)
        cheapest_wider = min(cheapest_wider, costs[width])
    return sorted(chosen)
