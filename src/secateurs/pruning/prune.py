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

from secateurs.errors import SecateursError
from secateurs.measure.cost import count_cost
from secateurs.pruning.allocation import Allocation, Target, allocate_layer_ratios
from secateurs.pruning.bias_fold import fold_removed_channels
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods.base import PruningMethod, ScoringData
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.surgery import remove_channels

log = logging.getLogger(__name__)


@dataclass
class PruneOutcome:
    plans: list[PruningPlan] = field(default_factory=list)
    rounds: list[list[list[Any]]] = field(default_factory=list)  # Torch-Pruning history per step
    achieved: float = 1.0  # cost ratio after / before, of the target's kind
    seconds: float = 0.0  # wall time of scoring, allocation and surgery (not fine-tuning)
    certificate: list[dict[str, Any]] = field(default_factory=list)  # methods that give one
    folds: list[dict[str, list[str]]] = field(default_factory=list)  # per step, when folding

    def selection(self, method: PruningMethod) -> str:
        """How the method chose channels: its ``selection`` attribute, else deterministic."""
        return str(getattr(method, "selection", "deterministic"))

    def record(self, method: PruningMethod, target: Target | None) -> dict[str, Any]:
        """The manifest's ``pruning`` entry."""
        return {
            "method": method.name,
            "method_params": method.params(),
            "target": None if target is None else {"kind": target.kind, "ratio": target.ratio},
            "achieved": self.achieved,
            "rounds": self.rounds,
            "plans": [plan.to_json() for plan in self.plans],
            "selection": self.selection(method),
        }


def step_targets(ratio: float, steps: int) -> list[float]:
    """Cost ratios (of the original) after each of ``steps`` steps, geometric, ending at ratio."""
    return [ratio ** ((step + 1) / steps) for step in range(steps)]


def prune_model(
    model: nn.Module,
    input_size: Sequence[int],
    method: PruningMethod,
    target: Target | None = None,
    allocation: Allocation | None = None,
    data: ScoringData | None = None,
    layer_ratios: Mapping[str, float] | None = None,
    steps: int = 1,
    between_steps: Callable[[nn.Module, int], None] | None = None,
    fold_bias: bool = False,
) -> PruneOutcome:
    """Prune ``model`` in place to ``target`` (or by explicit ``layer_ratios``) with ``method``.

    With ``steps`` > 1 the target is reached in geometric steps, ``between_steps(model, step)``
    (e.g. a short fine-tune) running after every step but the last. ``fold_bias`` folds the
    mean contribution of removed channels into their consumers (:mod:`.bias_fold`), measured
    on ``data``'s batches.
    """
    if layer_ratios is not None and steps > 1:
        raise SecateursError(
            "per-layer ratios are applied in one step (repeating them would compound); "
            "pass steps=1 (--steps 1)"
        )
    allocation = allocation or Allocation()
    data = data or ScoringData()
    outcome = PruneOutcome()
    kind = target.kind if target else "macs"
    base = count_cost(model, input_size)[kind]
    goals = step_targets(target.ratio, steps) if target else [None] * steps
    for step, goal in enumerate(goals):
        started = time.perf_counter()
        graph = ChannelGraph(model, input_size)
        if layer_ratios is not None:
            plan = allocate_layer_ratios(graph, method.score(graph, data), layer_ratios, allocation)
        else:
            assert goal is not None
            current = count_cost(model, input_size)[kind] / base
            if goal / current >= 1:  # an earlier step overshot this one's goal: nothing to do
                log.info(
                    "step %d/%d: %s ratio %.4f already meets it", step + 1, steps, kind, current
                )
                continue
            plan, _ = method.plan(graph, data, Target(kind, goal / current), allocation)
            for row in getattr(method, "certificate_", None) or []:  # e.g. PFP's per layer
                outcome.certificate.append({"step": step + 1, **row})
        if fold_bias:
            outcome.folds.append(fold_removed_channels(graph, plan, data.batches).to_json())
        outcome.rounds.append(remove_channels(graph, plan))
        outcome.plans.append(plan)
        outcome.seconds += time.perf_counter() - started
        outcome.achieved = count_cost(model, input_size)[kind] / base
        log.info("step %d/%d: %s ratio %.4f", step + 1, steps, kind, outcome.achieved)
        if between_steps is not None and step + 1 < steps:
            between_steps(model, step)
    return outcome
