"""What the allocator needs from a latency model, as a protocol the engine owns.

The pruning engine never imports :mod:`secateurs.latency` (which sits above it: it traces the
engine's channel graph and times its surgery). An :class:`~secateurs.pruning.allocation.Allocation`
is handed an object satisfying :class:`LatencyTargets` (``secateurs.latency.LatencySource``), and
the engine reads only these members (the allocator three, the prune step ``floor``); in return
the latency side drives the allocator through its public methods (``normalised_scores``,
``plan_from_counts``, ``settings``, ``groups``, ``graph``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from secateurs.pruning.allocation import Allocator, Target
    from secateurs.pruning.graph import ChannelGraph
    from secateurs.pruning.plan import PruningPlan


class LatencyTargets(Protocol):
    """A latency source as the allocator sees it."""

    tolerance: float  # relative error allowed on a measured latency ratio
    # the thinnest model the floor allows, as a latency target last measured it ({"ratio",
    # "ms", "dense_ms", ...}); None before any
    floor: dict[str, Any] | None

    def efficient_widths(self, graph: ChannelGraph) -> dict[str, list[int]]:
        """Per group root, the channel counts the backend runs faster than any wider one."""
        ...

    def meet(self, allocator: Allocator, target: Target) -> tuple[PruningPlan, float]:
        """A plan of ``allocator``'s whose measured latency ratio meets ``target`` (within
        ``tolerance``), and that measured ratio; a :class:`SecateursError` when out of reach."""
        ...
