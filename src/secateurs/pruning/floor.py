"""The channel floor: the fewest channels an allocation may leave in each channel group.

A one-shot global ranking can take a layer down to one channel (ResNet-20's stem at 1 of 16, a
ResNet-56 stream at 4 of 64), and the model then scores chance before fine-tuning. Every
allocation path (global and uniform ranking, automatic widths, the latency knapsack, gradual
Taylor) therefore keeps in each group at least

- ``fraction`` of its channels (default 1/8), rounded up, and up to a multiple of
  ``FLOOR_MULTIPLE`` (the vector width the CPU runtimes block channels by) where the group has at
  least ``FLOOR_MULTIPLE_FROM`` channels: there the rounding adds at most 1/8 of the group, on a
  narrower one it would be a large share of the group and could put the target out of reach;
- ``ends_fraction`` (default 1/4, never below ``fraction``) for the two groups a network cannot
  afford thin: the *stem* (the group of the first convolution, which every later layer reads
  through) and the *classifier's input* (the group the final linear layer reads);
- and never fewer than ``min_channels`` (the larger of the two applies).

A fraction of 0 turns that part off (``min_channels`` alone, the behaviour before the floor).
docs/latency.md ("Channel floor") gives the thinnest models the default floor allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from secateurs.errors import SecateursError
from secateurs.options import count, share
from secateurs.pruning.graph import ChannelGraph, ChannelGroup

DEFAULT_FRACTION = 0.125  # of each group's channels
DEFAULT_ENDS_FRACTION = 0.25  # of the stem's and the classifier input's
FLOOR_MULTIPLE = 8  # floors of wide groups are rounded up to a multiple of this
FLOOR_MULTIPLE_FROM = 64  # groups at least this wide are rounded


@dataclass(frozen=True)
class Floor:
    """How many channels a group keeps at least (see the module docstring)."""

    fraction: float = DEFAULT_FRACTION
    ends_fraction: float = DEFAULT_ENDS_FRACTION
    min_channels: int = 1

    def __post_init__(self) -> None:
        for name in ("fraction", "ends_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise SecateursError(f"the floor's {name} must be in [0, 1), not {value}")
        if self.min_channels < 1:
            raise SecateursError(f"min_channels must be at least 1, not {self.min_channels}")

    def of(self, group: ChannelGroup, end: bool | None = None) -> int:
        """The fewest channels ``group`` may keep (``end``: it is the stem or the classifier's
        input; None: as the graph marked it, :attr:`ChannelGroup.end`)."""
        end = bool(group.end) if end is None else end
        fraction = max(self.fraction, self.ends_fraction) if end else self.fraction
        share = math.ceil(fraction * group.size - 1e-9)
        if share and group.size >= FLOOR_MULTIPLE_FROM:
            share = math.ceil(share / FLOOR_MULTIPLE) * FLOOR_MULTIPLE
        return min(group.size, max(self.min_channels, share, 1))


def end_groups(graph: ChannelGraph) -> dict[str, str]:
    """``{root: "stem" or "classifier input"}`` (:attr:`ChannelGroup.end`, marked by the
    graph): the prunable group holding the first convolution's output channels, and the one the
    final linear layer reads."""
    return {g.root: g.end for g in graph.prunable_groups if g.end}


def group_floors(graph: ChannelGraph, floor: Floor) -> dict[str, int]:
    """The floor of every prunable group, by root."""
    return {g.root: floor.of(g) for g in graph.prunable_groups}


def floor_record(graph: ChannelGraph, floor: Floor) -> dict[str, Any]:
    """The floor as the report records it (``pruning.details["floor"]``)."""
    return {
        "fraction": floor.fraction,
        "ends_fraction": floor.ends_fraction,
        "min_channels": floor.min_channels,
        "ends": end_groups(graph),
        "per_group": group_floors(graph, floor),
    }


@dataclass(kw_only=True)
class FloorOptions:
    """The floor's options, declared once for every command that allocates channel counts
    (``secateurs prune``, ``secateurs taylor-gradual``)."""

    min_channels: int = count(1, "never keep fewer channels than this in a group")
    min_fraction: float = share(
        DEFAULT_FRACTION,
        help="never keep fewer than this fraction of a group's channels (rounded up, to a "
        "multiple of 8 in groups of 64 or more; the larger of this and --min-channels "
        "applies; 0: --min-channels alone)",
    )
    ends_min_fraction: float = share(
        DEFAULT_ENDS_FRACTION,
        help="the same for the stem (the first convolution's group) and the classifier's "
        "input (the group the final linear layer reads); never below --min-fraction",
    )
