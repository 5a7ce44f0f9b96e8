"""Prune a model in one call: score, allocate, remove, in one step or several.

:func:`prune_model` changes the model in place and returns what was done; the record it returns is
what a manifest stores to rebuild the pruned model (``rounds`` of Torch-Pruning history).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from secateurs.errors import SecateursError, first_line
from secateurs.measurement.cost import count_cost
from secateurs.pruning.allocation import Allocation, Target
from secateurs.pruning.bias_fold import fold_removed_channels
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods.base import PruningMethod, ScoringData
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.record import ChannelRounds, ManifestPruning, OneShotPrune
from secateurs.pruning.surgery import remove_channels
from secateurs.pruning.trial import verify_groups

log = logging.getLogger(__name__)


@dataclass
class PruneSettings:
    """What :func:`prune_model` is asked: a cost target (or explicit per-group ratios), how to
    allocate it, in how many steps, and whether to fold removed channels into their consumers."""

    target: Target | None = None  # None: layer_ratios
    layer_ratios: Mapping[str, float] | None = None  # {group root: fraction of channels removed}
    allocation: Allocation = field(default_factory=Allocation)
    steps: int = 1
    fold_bias: bool = False

    def __post_init__(self) -> None:
        if (self.target is None) == (self.layer_ratios is None):
            raise SecateursError("prune to a cost target or by per-layer ratios (one of the two)")
        if self.steps < 1:
            raise SecateursError(f"steps must be at least 1, not {self.steps}")
        if self.target is not None and self.target.kind == "latency" and self.steps > 1:
            raise SecateursError("a latency target is met in one step; pass steps=1 (--steps 1)")
        if self.layer_ratios is not None and self.steps > 1:
            raise SecateursError(
                "per-layer ratios are applied in one step (repeating them would compound); "
                "pass steps=1 (--steps 1)"
            )


@dataclass
class PruneOutcome:
    """What :func:`prune_model` did: one plan and one Torch-Pruning history per step."""

    plans: list[PruningPlan] = field(default_factory=list)
    rounds: list[list[list[Any]]] = field(default_factory=list)  # Torch-Pruning history per step
    achieved: float = 1.0  # cost ratio after / before, of the target's kind
    seconds: float = 0.0  # wall time of scoring, allocation and surgery (not fine-tuning)
    certificate: list[dict[str, Any]] = field(default_factory=list)  # methods that give one
    folds: list[dict[str, list[str]]] = field(default_factory=list)  # per step, when folding
    selection: str = "deterministic"  # how the method chose channels (MethodPlan.selection)
    protected: list[dict[str, str]] = field(default_factory=list)  # {root, reason}: kept whole
    round_to: int | None = None  # the channel multiple the allocation settled on (last step)
    latency_floor: dict[str, Any] | None = None  # a latency target's: the floor's model, measured

    def record(self, method: PruningMethod, target: Target | None) -> ManifestPruning:
        """The manifest's ``pruning`` entry."""
        return ManifestPruning(
            method=method.name,
            rounds=ChannelRounds(list(self.rounds)),
            oneshot=OneShotPrune(
                method_params=method.params(),
                target=None if target is None else {"kind": target.kind, "ratio": target.ratio},
                achieved=self.achieved,
                plans=[plan.to_json() for plan in self.plans],
                selection=self.selection,
                protected=self.protected,
                round_to=self.round_to,
            ),
        )


def step_targets(ratio: float, steps: int) -> list[float]:
    """Cost ratios (of the original) after each of ``steps`` steps, geometric, ending at ratio."""
    return [ratio ** ((step + 1) / steps) for step in range(steps)]


def prune_model(
    model: nn.Module,
    input_size: Sequence[int],
    method: PruningMethod,
    settings: PruneSettings | None = None,
    data: ScoringData | None = None,
    between_steps: Callable[[nn.Module, int], None] | None = None,
) -> PruneOutcome:
    """Prune ``model`` in place with ``method`` as ``settings`` say (None: half the MACs, in
    one step).

    With ``settings.steps`` > 1 the target is reached in geometric steps,
    ``between_steps(model, step)`` (e.g. a short fine-tune) running after every step but the
    last. ``settings.fold_bias`` folds the mean contribution of removed channels into their
    consumers (:mod:`.bias_fold`), measured on ``data``'s batches.
    """
    settings = settings or PruneSettings(target=Target())
    data = data or ScoringData()
    outcome = PruneOutcome()
    target = settings.target
    kind = target.kind if target else "macs"
    counted = "macs" if kind == "latency" else kind  # latency: measured by the allocation
    base = _base_cost(model, input_size)[counted]
    goals = step_targets(target.ratio, settings.steps) if target else [None]
    for step, goal in enumerate(goals):
        started = time.perf_counter()
        asked: Target | Mapping[str, float] | None = settings.layer_ratios
        if goal is not None:
            current = count_cost(model, input_size)[counted] / base
            if goal / current >= 1:  # an earlier step overshot this one's goal: nothing to do
                log.info("step %d/%d: %s ratio %.4f already meets it", step + 1, len(goals),
                         kind, current)  # fmt: skip
                continue
            asked = Target(kind, goal / current)
        assert asked is not None
        graph = _checked_graph(model, input_size, outcome)
        achieved = _explained(outcome, _prune_step, graph, method, asked, settings, data, step)
        outcome.seconds += time.perf_counter() - started
        outcome.achieved = count_cost(model, input_size)[counted] / base
        if kind == "latency":
            outcome.achieved = achieved
        log.info("step %d/%d: %s ratio %.4f", step + 1, len(goals), kind, outcome.achieved)
        if between_steps is not None and step + 1 < len(goals):
            between_steps(model, step)
    return outcome


def _base_cost(model: nn.Module, input_size: Sequence[int]) -> dict[str, int]:
    try:
        return count_cost(model, input_size)
    except RuntimeError as error:
        raise SecateursError(
            f"{type(model).__name__} does not run on an input of {tuple(input_size)}: "
            f"{first_line(error)}"
        ) from None


def _checked_graph(
    model: nn.Module, input_size: Sequence[int], outcome: PruneOutcome
) -> ChannelGraph:
    """The model's channel graph with every group the graph cannot follow kept whole (structure
    checks, then a trial removal); those are added to ``outcome.protected``. Refuses the model
    when nothing is left to prune."""
    graph = ChannelGraph(model, input_size)
    verify_groups(graph)
    known = {row["root"] for row in outcome.protected}
    for group in graph.groups:
        if group.structural and group.root not in known:
            outcome.protected.append({"root": group.root, "reason": group.reason})
    if not graph.prunable_groups:
        why = next((g.reason for g in graph.groups if g.structural), None)
        why = why or next((g.reason for g in graph.groups if not g.prunable), "no channel groups")
        raise SecateursError(f"nothing in {type(model).__name__} can be pruned safely: {why}")
    if outcome.protected:
        log.info("%d channel group(s) kept whole (see the record's 'protected')",
                 len(outcome.protected))  # fmt: skip
    return graph


def _explained(outcome: PruneOutcome, step: Callable[..., float], *args: Any) -> float:
    """``step(*args, outcome)``; a refusal (a target below what can be reached) names the
    structures kept whole, which are often why."""
    try:
        return step(*args, outcome)
    except SecateursError as error:
        if not outcome.protected:
            raise
        raise SecateursError(
            f"{error}; {len(outcome.protected)} channel group(s) are kept whole because the graph "
            f"cannot follow them (first: {outcome.protected[0]['root']}: "
            f"{outcome.protected[0]['reason']})"
        ) from None


def _prune_step(
    graph: ChannelGraph,
    method: PruningMethod,
    asked: Target | Mapping[str, float],
    settings: PruneSettings,
    data: ScoringData,
    step: int,
    outcome: PruneOutcome,
) -> float:
    """Plan ``asked`` with ``method``, fold if asked, remove the channels; record it all.
    Returns the ratio the plan achieved (as the method measured it)."""
    result = method.plan(graph, data, asked, settings.allocation)
    outcome.certificate += [{"step": step + 1, **row} for row in result.certificate]
    outcome.selection = result.selection
    if result.round_to is not None:
        outcome.round_to = result.round_to
    if settings.allocation.latency is not None and settings.allocation.latency.floor is not None:
        outcome.latency_floor = settings.allocation.latency.floor
    if settings.fold_bias:
        outcome.folds.append(fold_removed_channels(graph, result.plan, data.batches).to_json())
    outcome.rounds.append(remove_channels(graph, result.plan))
    outcome.plans.append(result.plan)
    return result.achieved
