"""Gradual latency pruning (after HALP, Shen et al., NeurIPS 2022): the decisions of each step of
``secateurs taylor-gradual --target-latency R``, made on the latency side of the layers.

The training-time callback (:mod:`secateurs.pruning.taylor_gradual_latency`) scores channels
while the model trains and hands every step here (:class:`~secateurs.pruning.latency_targets.
GradualStep`). A step:

- prunes to its budget, which descends exponentially from the dense latency to ``R x dense``:
  step ``k`` of ``K`` aims at ``R ** (k / K)`` (:func:`latency_budgets`);
- prices removals at the *current* widths: the latency model's prediction
  (:meth:`LatencyModel.predict` on the dense model's graph with the channels removed so far, the
  table being indexed by widths) before and after shrinking one group to its next narrower
  efficient width (never below the group's floor), and takes the move with the least importance
  (the summed scores of the lowest-scoring channels it removes) per millisecond saved, until
  the prediction is at or under the budget;
- times the pruned model whole against the dense one (interleaved,
  :meth:`LatencySource.measured_ratio`, on CPU copies), and scales the next step's aim by how
  far that measurement was from the prediction;
- the last step then corrects, as the one-shot allocation does, by measurement: it is planned
  again from the state before it to ``aim = predicted x R / measured`` (more moves, fewer, or
  earlier steps' moves given back), measured again, until within ``LATENCY_TOLERANCE`` of R
  (at most ``MAX_CORRECTIONS`` times; the closest state is kept).

A decision is plain JSON (the channels removed and given back, the figures it was made on), so
the callback checkpoints it and a resumed run replays it without timing again.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from secateurs.latency.allocate import LATENCY_TOLERANCE
from secateurs.latency.predict import LatencyModel
from secateurs.latency.source import LatencySource
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.latency_targets import GradualStep
from secateurs.pruning.plan import PruningPlan

log = logging.getLogger(__name__)
MAX_CORRECTIONS = 6  # measured corrections after the last step (as the one-shot allocation)
MAX_CARRIED_ERROR = 1.25  # a step's measured / predicted carried to the next, clamped to this
Move = list[Any]  # [group root, [channels]]: one group shrunk to its next efficient width


def latency_budgets(target: float, steps: int) -> list[float]:
    """The latency ratio each of ``steps`` steps prunes to: ``target ** (k / steps)``, k = 1..K,
    descending exponentially from the dense model (1) to ``target``."""
    return [target ** ((k + 1) / steps) for k in range(steps)]


def carried_error(previous: list[dict[str, Any]]) -> float:
    """The last step's measured / predicted ratio, by which the next step divides its budget;
    clamped to [1 / MAX_CARRIED_ERROR, MAX_CARRIED_ERROR] so one noisy timing cannot make a
    step prune far past its budget (the last step's measured correction has no such bound)."""
    if not previous:
        return 1.0
    error = previous[-1]["measured"] / previous[-1]["predicted"]
    return min(MAX_CARRIED_ERROR, max(1 / MAX_CARRIED_ERROR, error))


def allowed_widths(
    graph: ChannelGraph, model: LatencyModel, floors: dict[str, int]
) -> dict[str, list[int]]:
    """Per group, the widths a step may leave it at, widest first: its efficient widths not
    under its floor, and its full width."""
    efficient = model.efficient_widths(graph)
    return {
        group.root: sorted(
            {w for w in efficient.get(group.root, []) if w >= floors.get(group.root, 1)}
            | {group.size},
            reverse=True,
        )
        for group in graph.prunable_groups
    }


class Pricer:
    """The latency model at the current widths: per-layer milliseconds kept up to date as groups
    shrink or grow, so a candidate move is priced on the layers it touches only."""

    def __init__(self, model: LatencyModel, graph: ChannelGraph, removed: dict[str, Tensor]):
        self.model, self.removed = model, removed
        self.touching = {
            group.root: [
                i
                for i, layer in enumerate(model.layers)
                if any(k.root == group.root for k in layer.links)
            ]
            for group in graph.prunable_groups
        }
        self.layer_ms = [model.layer_ms(layer, removed) for layer in model.layers]

    def ratio(self) -> float:
        ms = self.model.calibrated_ms(self.model.fixed_ms + sum(self.layer_ms), self.removed)
        return ms / self.model.dense_ms

    def trial(self, root: str, mask: Tensor) -> tuple[float, list[float]]:
        """Milliseconds saved with ``root``'s mask replaced, and the new per-layer figures."""
        trial = {**self.removed, root: mask}
        new = [self.model.layer_ms(self.model.layers[i], trial) for i in self.touching[root]]
        return sum(self.layer_ms[i] for i in self.touching[root]) - sum(new), new

    def ratio_after(self, root: str, mask: Tensor, saved: float) -> float:
        """The predicted ratio with ``root``'s mask replaced, saving ``saved`` ms of table."""
        table_ms = self.model.fixed_ms + sum(self.layer_ms) - saved
        trial = {**self.removed, root: mask}
        return self.model.calibrated_ms(table_ms, trial) / self.model.dense_ms

    def apply(self, root: str, mask: Tensor, new: list[float] | None = None) -> None:
        self.removed[root] = mask
        if new is None:
            layers = [self.model.layers[i] for i in self.touching[root]]
            new = [self.model.layer_ms(layer, self.removed) for layer in layers]
        for i, ms in zip(self.touching[root], new, strict=True):
            self.layer_ms[i] = ms


Candidate = tuple[float, str, list[int], Tensor, list[float], float]


def candidates(
    pricer: Pricer, widths: dict[str, list[int]], scores: dict[str, Tensor]
) -> list[Candidate]:
    """Every group's next move: (importance per millisecond saved, root, the lowest-scoring
    alive channels down to its next narrower allowed width, its mask, the per-layer figures,
    the predicted ratio after); moves that save nothing are left out."""
    found: list[Candidate] = []
    for root, allowed in widths.items():
        mask = pricer.removed[root]
        alive = torch.nonzero(~mask).flatten().tolist()
        narrower = [w for w in allowed if w < len(alive)]
        if not narrower:
            continue
        score = scores[root].tolist()
        channels = sorted(alive, key=lambda c: (score[c], c))[: len(alive) - narrower[0]]
        trial = mask.clone()
        trial[channels] = True
        saved, new = pricer.trial(root, trial)
        if saved <= 0:
            continue  # a move that saves nothing never pays for the channels it removes
        value = sum(score[c] for c in channels) / saved
        found.append(
            (value, root, sorted(channels), trial, new, pricer.ratio_after(root, trial, saved))
        )
    return found


def shrink(
    pricer: Pricer, widths: dict[str, list[int]], scores: dict[str, Tensor], aim: float
) -> list[Move]:
    """Moves, least importance per millisecond saved first, until the predicted ratio is at or
    under ``aim`` (or nothing is left to remove); applied to ``pricer``. When the next move
    would cross the aim, the crossing move taken is the one landing closest under it, and if
    even that lands more than the tolerance under it, the best move that does not cross is
    taken first where there is one (small moves fill the gap a coarse one would overshoot)."""
    moves: list[Move] = []
    while pricer.ratio() > aim:
        found = candidates(pricer, widths, scores)
        if not found:
            break
        best = min(found, key=lambda c: c[0])
        if best[5] <= aim:
            best = max((c for c in found if c[5] <= aim), key=lambda c: (c[5], -c[0]))
            short = [c for c in found if c[5] > aim]
            if best[5] < aim * (1 - LATENCY_TOLERANCE) and short:
                best = min(short, key=lambda c: c[0])
        _, root, channels, trial, new, _ = best
        pricer.apply(root, trial, new)
        moves.append([root, channels])
    return moves


def give_back(pricer: Pricer, moves: list[Move], aim: float) -> list[Move]:
    """Earlier ``moves`` undone, latest first, each one whose undoing keeps the predicted ratio at
    or under ``aim`` (those that do not are skipped); returns those undone (taken out of
    ``moves``)."""
    undone: list[Move] = []
    for index in range(len(moves) - 1, -1, -1):
        root, channels = moves[index]
        before = pricer.removed[root]
        mask = before.clone()
        mask[channels] = False
        pricer.apply(root, mask)
        if pricer.ratio() > aim:
            pricer.apply(root, before)
            continue
        undone.append(moves.pop(index))
    return undone


def plan_of(removed: dict[str, Tensor]) -> PruningPlan:
    return PruningPlan(
        {r: torch.nonzero(m).flatten().tolist() for r, m in removed.items() if bool(m.any())}
    )


class GradualLatency:
    """The latency side of gradual pruning for one :class:`LatencySource`: it satisfies
    :class:`~secateurs.pruning.latency_targets.GradualLatencyTargets`. Models are timed as CPU
    copies of the dense model (as the reports time them), whatever device trains."""

    def __init__(self, source: LatencySource) -> None:
        self.source = source
        self._graph: ChannelGraph | None = None

    def cpu_graph(self, graph: ChannelGraph) -> ChannelGraph:
        """The channel graph of a CPU copy of the model (taken once: timing reads no weights)."""
        if self._graph is None:
            model = copy.deepcopy(graph.model).cpu().eval()
            self._graph = ChannelGraph(model, graph.input_size)
        return self._graph

    def warm(self, graph: ChannelGraph) -> None:
        self.source.model_for(self.cpu_graph(graph))

    def measured(self, graph: ChannelGraph, removed: dict[str, Tensor]) -> float:
        return self.source.measured_ratio(graph, plan_of(removed))

    def prune_step(self, step: GradualStep) -> dict[str, Any]:
        graph = self.cpu_graph(step.graph)
        model = self.source.model_for(graph)
        widths = allowed_widths(graph, model, step.floors)
        scores = {root: value.detach().double().cpu() for root, value in step.scores.items()}
        pricer = Pricer(model, graph, {r: m.clone() for r, m in step.removed.items()})
        budget = latency_budgets(step.target, step.steps)[step.index]
        aim = budget / carried_error(step.previous)
        start = dict(pricer.removed)
        moves = shrink(pricer, widths, scores, aim)
        predicted, measured = pricer.ratio(), self.measured(graph, pricer.removed)
        decision: dict[str, Any] = {
            "step": step.index + 1, "budget": budget, "aim": aim, "predicted": predicted,
            "measured": measured, "moves": moves, "corrections": [],
        }  # fmt: skip
        log.info("gradual latency step %d/%d: budget %.3f, predicted %.3f, measured %.3f",
                 step.index + 1, step.steps, budget, predicted, measured)  # fmt: skip
        if step.final:
            earlier = [m for d in step.previous for m in d["moves"]]
            replan = Replan(pricer, widths, scores, start, earlier)
            self._correct(decision, replan, graph, step.target)
        decision["removed"], decision["restored"] = _changes(step.removed, pricer.removed)
        return decision

    def _correct(
        self, decision: dict[str, Any], replan: Replan, graph: ChannelGraph, target: float
    ) -> None:
        """Re-plan the last step to a corrected aim (``aim = predicted x target / measured``)
        until the measured ratio is within the tolerance of ``target``; a re-plan landing on a
        state measured before is redone halfway between it and the last one. The closest state
        measured is left in the pricer and recorded as the decision's ``chosen`` figures."""
        pricer, measured = replan.pricer, decision["measured"]
        tried, exhausted = [_state(pricer, measured, target)], False
        for _ in range(MAX_CORRECTIONS):
            if tried[-1][0] <= LATENCY_TOLERANCE:
                break
            aim = min(0.999, max(1e-4, pricer.ratio() * target / measured))
            moves, given_back = replan(aim)
            repeated = _repeated(pricer.removed, tried)
            if repeated is not None and repeated is not tried[-1]:
                aim = (tried[-1][3] + repeated[3]) / 2
                moves, given_back = replan(aim)
                repeated = _repeated(pricer.removed, tried)
            if repeated is not None:
                exhausted = measured > target and pricer.ratio() > aim
                break  # nothing new to measure
            measured = self.measured(graph, pricer.removed)
            decision["corrections"].append(
                {"aim": aim, "predicted": pricer.ratio(), "measured": measured,
                 "moves": moves, "given_back": given_back}
            )  # fmt: skip
            tried.append(_state(pricer, measured, target))
        error, removed, measured, predicted = min(tried, key=lambda t: t[0])
        _restore(pricer, removed)
        decision["chosen"] = {"predicted": predicted, "measured": measured}
        if error > LATENCY_TOLERANCE:
            why = (
                "the latency model finds nothing more to remove that saves time"
                if exhausted
                else "the widths' steps are too coarse"
            )
            log.warning("gradual latency pruning ends at a measured ratio of %.3f for a target "
                        "of %g (%s)", measured, target, why)  # fmt: skip


@dataclass
class Replan:
    """The last step planned again from the state before it: moves to a lower aim, or the
    earlier steps' moves given back (latest first) to a higher one."""

    pricer: Pricer
    widths: dict[str, list[int]]
    scores: dict[str, Tensor]
    start: dict[str, Tensor]  # the masks before the last step
    earlier: list[Move]  # the earlier steps' moves

    def __call__(self, aim: float) -> tuple[list[Move], list[Move]]:
        """(the step's moves, the earlier moves given back) for ``aim``, applied."""
        _restore(self.pricer, self.start)
        if self.pricer.ratio() > aim:
            return shrink(self.pricer, self.widths, self.scores, aim), []
        return [], give_back(self.pricer, list(self.earlier), aim)


def _restore(pricer: Pricer, removed: dict[str, Tensor]) -> None:
    for root, mask in removed.items():
        if pricer.removed[root] is not mask:
            pricer.apply(root, mask)


def _repeated(removed: dict[str, Tensor], tried: list[tuple]) -> tuple | None:
    """The state of ``tried`` with these removals, if one has them."""
    key = _key(removed)
    return next((state for state in tried if _key(state[1]) == key), None)


def _key(removed: dict[str, Tensor]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple((root, tuple(torch.nonzero(m).flatten().tolist())) for root, m in removed.items())


def _state(pricer: Pricer, measured: float, target: float) -> tuple[float, dict, float, float]:
    """A state tried: (error against ``target``, masks, measured, predicted)."""
    return abs(measured / target - 1), dict(pricer.removed), measured, pricer.ratio()


def _changes(before: dict[str, Tensor], after: dict[str, Tensor]) -> tuple[list[Move], list[Move]]:
    """([root, channel] pairs removed, pairs given back) from ``before`` to ``after``."""
    removed, restored = [], []
    for root, old in before.items():
        new = after[root]
        removed += [[root, c] for c in torch.nonzero(new & ~old).flatten().tolist()]
        restored += [[root, c] for c in torch.nonzero(old & ~new).flatten().tolist()]
    return removed, restored
