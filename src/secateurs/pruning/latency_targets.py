"""What the allocator needs from a latency model, as a protocol the engine owns.

The pruning engine never imports :mod:`secateurs.latency` (which sits above it: it traces the
engine's channel graph and times its surgery). An :class:`~secateurs.pruning.allocation.Allocation`
is handed an object satisfying :class:`LatencyTargets` (``secateurs.latency.LatencySource``), and
the engine reads only these members (the allocator three, the prune step ``floor``); in return
the latency side drives the allocator through its public methods (``normalised_scores``,
``plan_from_counts``, ``settings``, ``groups``, ``graph``).

Gradual latency pruning (``secateurs taylor-gradual --target-latency``) is handed an object
satisfying :class:`GradualLatencyTargets` the same way: the callback scores and applies, the
latency side (``secateurs.latency.gradual``) decides each step's channels and times the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor

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


@dataclass
class GradualStep:
    """One step of gradual latency pruning, as the training-time callback hands it to the latency
    side: the channel graph of the model being trained, the channels removed so far (a bool mask
    per group root, on the CPU), the current importance of every channel, the fewest channels
    each group keeps, the target latency ratio, which step of how many this is, and the decisions
    of the steps before (JSON, as :meth:`GradualLatencyTargets.prune_step` returned them)."""

    graph: ChannelGraph
    removed: dict[str, Tensor]
    scores: dict[str, Tensor]
    floors: dict[str, int]
    target: float
    index: int  # 0-based
    steps: int
    previous: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.index == self.steps - 1


class GradualLatencyTargets(Protocol):
    """What gradual latency pruning needs from the latency side (``secateurs.latency.gradual.
    GradualLatency``): one decision per step, JSON, so it is checkpointed and replayed."""

    def warm(self, graph: ChannelGraph) -> None:
        """Build (or read from the cache) what the steps will need for ``graph``'s model, so
        that timing a table happens before training rather than inside a step."""
        ...

    def prune_step(self, step: GradualStep) -> dict[str, Any]:
        """The step's decision: ``removed`` ([root, channel] pairs to remove now), ``restored``
        (pairs removed before and given back), with the figures it was made on."""
        ...
