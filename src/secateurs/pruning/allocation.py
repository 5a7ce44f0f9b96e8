"""Turn channel scores into a plan that meets a cost target.

Two rankings:
- ``global``: one threshold across all groups on (optionally per-group normalised) scores; the
  ``n`` lowest-scoring channels of the whole network go, with ``n`` found by bisection on the
  predicted cost;
- ``uniform``: every group keeps the same fraction of its channels, the fraction found by
  bisection.
Channel counts kept are rounded up to a multiple (``round_to``), or with ``auto_widths`` to the
next width the latency tables found efficient (:mod:`secateurs.latency`), and a group never keeps
fewer than its floor (:mod:`secateurs.pruning.floor`: a fraction of its width, more for the stem
and the classifier's input, at least ``min_channels``), so a layer never collapses. The
prediction (:class:`CostModel`) is then checked by real surgery on a copy and the internal
target corrected until the achieved ratio is within ``tolerance`` of the asked one. Latency
targets are met by the allocation's latency source
(:class:`~secateurs.pruning.latency_targets.LatencyTargets`, implemented in
:mod:`secateurs.latency`, which the engine never imports).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from secateurs.errors import SecateursError
from secateurs.measurement.cost import count_cost
from secateurs.pruning.cost_model import CostModel
from secateurs.pruning.floor import DEFAULT_ENDS_FRACTION, DEFAULT_FRACTION, Floor
from secateurs.pruning.graph import ChannelGraph, ChannelGroup
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.surgery import remove_channels

if TYPE_CHECKING:
    from secateurs.pruning.latency_targets import LatencyTargets

log = logging.getLogger(__name__)
STRATEGIES = ("global", "uniform")
TARGET_KINDS = ("macs", "params", "latency")
ROUNDING_SLACK = 0.02  # relative miss of the target accepted before a finer multiple is tried


@dataclass
class Target:
    """Keep ``ratio`` of the model's ``kind`` ("macs", "params", or "latency": measured in the
    backend of the allocation's latency source); 0 < ratio < 1."""

    kind: str = "macs"
    ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise SecateursError(f"a target is 'macs', 'params' or 'latency', not {self.kind!r}")
        if not 0 < self.ratio < 1:
            raise SecateursError(
                f"a target ratio must be between 0 and 1 exclusive, not {self.ratio}"
            )


@dataclass
class Allocation:
    strategy: str = "global"
    normalize: str | None = None  # per-group normalisation for global ranking: none, mean, max;
    # None: the method's own choice
    round_to: int = 1
    min_channels: int = 1
    min_fraction: float = DEFAULT_FRACTION  # the floor: of each group's channels
    ends_fraction: float = DEFAULT_ENDS_FRACTION  # of the stem's and the classifier input's
    tolerance: float = 0.01  # relative error allowed on the achieved ratio
    max_corrections: int = 6
    auto_widths: bool = False  # kept counts rounded up to the latency tables' efficient widths
    latency: LatencyTargets | None = None  # latency targets and auto widths (a LatencySource)

    def __post_init__(self) -> None:
        self.floor()  # checked

    def floor(self) -> Floor:
        """The fewest channels a group keeps (:mod:`secateurs.pruning.floor`)."""
        return Floor(self.min_fraction, self.ends_fraction, max(self.min_channels, 1))


def check_scores(graph: ChannelGraph, scores: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Every prunable group has a finite 1-D score per channel; anything else is an error."""
    checked = {}
    for group in graph.prunable_groups:
        if group.root not in scores:
            raise SecateursError(f"the method gave no scores for group {group.root}")
        score = torch.as_tensor(scores[group.root], dtype=torch.float64).detach().cpu()
        if score.shape != (group.size,):
            raise SecateursError(
                f"scores for group {group.root} have shape {tuple(score.shape)}, "
                f"expected ({group.size},)"
            )
        if not torch.isfinite(score).all():
            raise SecateursError(f"scores for group {group.root} are not all finite")
        checked[group.root] = score
    return checked


def _normalised(score: Tensor, how: str) -> Tensor:
    if how == "mean":
        return score / score.mean().clamp_min(1e-12)
    if how == "max":
        return score / score.max().clamp_min(1e-12)
    return score


def kept_count(
    group: ChannelGroup, wanted: int, settings: Allocation, allowed: list[int] | None = None
) -> int:
    """``wanted`` raised to the group's floor (:meth:`Allocation.floor`), then to the next
    ``allowed`` width or multiple."""
    floor = settings.floor().of(group)
    kept = max(floor, wanted)
    if allowed:
        return min([width for width in allowed if width >= kept] or [group.size])
    if settings.round_to > 1:
        kept = min(group.size, math.ceil(kept / settings.round_to) * settings.round_to)
    return kept


class Allocator:
    """Builds plans for one graph and one set of scores."""

    def __init__(
        self, graph: ChannelGraph, scores: Mapping[str, Tensor], settings: Allocation
    ) -> None:
        if settings.strategy not in STRATEGIES:
            raise SecateursError(f"strategy must be one of {', '.join(STRATEGIES)}")
        self.graph = graph
        self.settings = settings
        self.scores = check_scores(graph, scores)
        self.groups = graph.prunable_groups
        if not self.groups:
            raise SecateursError(f"{type(graph.model).__name__} has no prunable channel groups")
        self.cost_model = CostModel(graph)
        self.allowed: dict[str, list[int]] = {}  # efficient widths per group (auto_widths)
        if settings.auto_widths:
            if settings.latency is None:
                raise SecateursError("automatic widths need a latency source (a backend)")
            self.allowed = settings.latency.efficient_widths(graph)
        # global order: (normalised score, group position, channel) ascending
        entries = []
        for position, group in enumerate(self.groups):
            normalised = self.normalised_scores(group)
            entries += [(float(v), position, c) for c, v in enumerate(normalised.tolist())]
        entries.sort()
        self.global_order = [(position, channel) for _, position, channel in entries]

    def normalised_scores(self, group: ChannelGroup) -> Tensor:
        """The group's scores, normalised as the settings say (the global ranking's values)."""
        return _normalised(self.scores[group.root], self.settings.normalize)

    # -- plans from one scalar knob ---------------------------------------------------------------
    def plan_from_counts(self, kept: list[int]) -> PruningPlan:
        """Each group (in ``groups`` order) keeps its ``kept`` highest-scoring channels."""
        removals = {}
        for group, keep in zip(self.groups, kept, strict=True):
            if keep < group.size:
                order = torch.argsort(self.scores[group.root], stable=True)
                removals[group.root] = sorted(order[: group.size - keep].tolist())
        return PruningPlan(removals)

    def plan_uniform(self, fraction: float) -> PruningPlan:
        """Every group keeps ``fraction`` of its channels (rounded as the settings say)."""
        allowed = self.allowed
        kept = [
            kept_count(group, round(fraction * group.size), self.settings, allowed.get(group.root))
            for group in self.groups
        ]
        return self.plan_from_counts(kept)

    def plan_global(self, removed_total: int) -> PruningPlan:
        removed = [0] * len(self.groups)
        for position, _ in self.global_order[:removed_total]:
            removed[position] += 1
        kept = [
            kept_count(group, group.size - removed[i], self.settings, self.allowed.get(group.root))
            for i, group in enumerate(self.groups)
        ]
        return self.plan_from_counts(kept)

    def predicted_ratio(self, plan: PruningPlan, kind: str) -> float:
        masks = {}
        for group in self.groups:
            mask = torch.zeros(group.size, dtype=torch.bool)
            mask[plan.removals.get(group.root, [])] = True
            masks[group.root] = mask
        predicted = self.cost_model.predict(masks)
        base = self.cost_model.macs if kind == "macs" else self.cost_model.params
        return predicted[kind] / base

    def _bisect(self, ratio: float, kind: str) -> PruningPlan:
        """The plan whose predicted ratio is the largest not above ``ratio`` (or the lowest)."""
        if self.settings.strategy == "uniform":
            knob_plan: Callable[[float], PruningPlan] = lambda q: self.plan_uniform(1 - q)  # noqa: E731
            low, high, steps = 0.0, 1.0, 30
        else:
            knob_plan = lambda n: self.plan_global(int(n))  # noqa: E731
            low, high = 0, len(self.global_order)
            steps = max(1, math.ceil(math.log2(high + 1)) + 1)
        best = knob_plan(high)
        if self.predicted_ratio(best, kind) > ratio:
            return best  # even the most pruning cannot reach it; the caller reports
        for _ in range(steps):
            middle = (low + high) / 2 if self.settings.strategy == "uniform" else (low + high) // 2
            plan = knob_plan(middle)
            if self.predicted_ratio(plan, kind) <= ratio:
                best, high = plan, middle
            else:
                low = middle
            if self.settings.strategy == "global" and high - low <= 1:
                break
        return best

    # -- meeting a target -------------------------------------------------------------------------
    def measured_ratio(self, plan: PruningPlan, kind: str) -> float:
        """The ratio real surgery on a copy of the model achieves."""
        model = copy.deepcopy(self.graph.model)
        remove_channels(ChannelGraph(model, self.graph.input_size), plan)
        base = self.cost_model.macs if kind == "macs" else self.cost_model.params
        return count_cost(model, self.graph.input_size)[kind] / base

    def meet(self, target: Target) -> tuple[PruningPlan, float]:
        """A plan achieving ``target`` within the tolerance; returns it and the achieved ratio.

        When rounding channel counts to ``round_to`` makes the target unreachable, or leaves the
        achieved ratio more than ``ROUNDING_SLACK`` from it, the multiple is halved (16, 8, 4, 2,
        1) until it fits: the target is kept, the CPU-friendly widths are given up only as far as
        needed. ``self.settings.round_to`` says which multiple was used. A latency target is met
        by the latency source (:meth:`LatencyTargets.meet`), the multiple halved the same way
        while it cannot get fast enough or lands further than its ``tolerance`` from the target.
        """
        slack, attempt = ROUNDING_SLACK, self._meet_with_rounding
        if target.kind == "latency":
            source = self.settings.latency
            if source is None:
                raise SecateursError(
                    "a latency target needs a latency source (backend, batch size)"
                )
            slack, attempt = source.tolerance, lambda target: source.meet(self, target)
        while True:
            try:
                plan, achieved = attempt(target)
            except SecateursError:
                if self.settings.round_to <= 1:
                    raise
            else:
                error = abs(achieved / target.ratio - 1)
                if error <= slack or self.settings.round_to <= 1:
                    if target.kind != "latency" and error > self.settings.tolerance:
                        log.warning(
                            "the closest plan found keeps a %s ratio of %.4f for a target of %g "
                            "(%.1f%% off; tolerance %.1f%%)",
                            target.kind,
                            achieved,
                            target.ratio,
                            100 * error,
                            100 * self.settings.tolerance,
                        )
                    return plan, achieved
            finer = max(1, self.settings.round_to // 2)
            log.info("channels in multiples of %d miss the target; trying multiples of %d",
                     self.settings.round_to, finer)  # fmt: skip
            self.settings = replace(self.settings, round_to=finer)

    def _meet_with_rounding(self, target: Target) -> tuple[PruningPlan, float]:
        asked = target.ratio
        lowest_plan = (
            self.plan_uniform(0.0)
            if self.settings.strategy == "uniform"
            else self.plan_global(len(self.global_order))
        )
        lowest = self.measured_ratio(lowest_plan, target.kind)
        if lowest > asked * (1 + self.settings.tolerance):
            raise SecateursError(
                f"a {target.kind} ratio of {asked:g} cannot be met above the channel floor: "
                f"the most this method can prune leaves {lowest:.3f} (the floor: "
                f"--min-fraction, --ends-min-fraction, --min-channels)"
            )
        internal = asked
        best: tuple[float, PruningPlan, float] | None = None
        for _ in range(self.settings.max_corrections):
            plan = self._bisect(internal, target.kind)
            achieved = self.measured_ratio(plan, target.kind)
            error = abs(achieved / asked - 1)
            if best is None or error < best[0]:
                best = (error, plan, achieved)
            if error <= self.settings.tolerance:
                break
            internal = min(0.999, max(1e-4, internal * asked / achieved))
        assert best is not None
        log.debug("allocation: asked %.4f, achieved %.4f", asked, best[2])
        return best[1], best[2]


def allocate_layer_ratios(
    graph: ChannelGraph,
    scores: Mapping[str, Tensor],
    ratios: Mapping[str, float],
    settings: Allocation,
) -> PruningPlan:
    """Prune ``ratios[root]`` of each named group's channels (its lowest scores)."""
    checked = check_scores(graph, scores)
    removals = {}
    for root, ratio in ratios.items():
        group = graph.group(root)
        if not group.prunable:
            raise SecateursError(f"cannot prune group {root}: {group.reason}")
        if not 0 <= ratio < 1:
            raise SecateursError(f"the ratio for {root} must be in [0, 1), not {ratio}")
        keep = kept_count(group, group.size - round(ratio * group.size), settings)
        order = torch.argsort(checked[root], stable=True)
        removals[root] = sorted(order[: group.size - keep].tolist())
    return PruningPlan(removals)
