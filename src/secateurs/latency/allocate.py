"""Scores + a latency target -> a plan: keep the most importance whose predicted latency fits.

A greedy knapsack (after HALP, Shen et al., NeurIPS 2022): each group shrinks in steps from one
*efficient* width to the next narrower one (:meth:`LatencyModel.efficient_widths`: widths the
backend's kernels run faster than any wider one); a step costs the summed (normalised) scores of
the channels it removes and saves the table's latency of the layers it narrows, their other
widths as they are at that point, so a group's saving sees its neighbours' pruning; each state's
predicted latency is the calibrated one (:mod:`secateurs.latency.calibration`). The step with
the least importance per millisecond saved goes first, until nothing is left to remove. Every
prefix of that path is a plan; the one meeting the budget is taken, checked by timing real
surgery on a copy against the dense model (interleaved), and the budget corrected until the
measured ratio is within ``LATENCY_TOLERANCE`` of the target, as :meth:`Allocator.meet` does for
MACs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from secateurs.errors import SecateursError
from secateurs.latency.predict import LatencyModel, first_removed
from secateurs.pruning.allocation import kept_count
from secateurs.pruning.plan import PruningPlan

if TYPE_CHECKING:
    from secateurs.latency.source import LatencySource
    from secateurs.pruning.allocation import Allocator, Target

log = logging.getLogger(__name__)
LATENCY_TOLERANCE = 0.03  # relative error allowed on the measured latency ratio


@dataclass
class PathPoint:
    kept: list[int]  # channels kept per prunable group (allocator order)
    predicted_ms: float


def _steps_of(allocator: Allocator, model: LatencyModel) -> list[list[int]]:
    """Per group, the widths it may keep, widest first (never below the group's floor): the
    table's efficient widths, and of those only multiples of ``round_to`` when it is above 1
    (the multiples themselves when the table finds none efficient)."""
    allowed = model.efficient_widths(allocator.graph)
    multiple = allocator.settings.round_to
    steps = []
    for group in allocator.groups:
        floor = kept_count(group, 0, replace(allocator.settings, round_to=1))  # the floor
        widths = set(allowed.get(group.root, [group.size]))
        if multiple > 1:
            multiples = set(range(multiple, group.size, multiple))
            widths = (widths & multiples) or multiples
        steps.append(sorted({w for w in widths if w >= floor} | {group.size}, reverse=True))
    return steps


def greedy_path(allocator: Allocator, model: LatencyModel) -> list[PathPoint]:
    """The dense state, then one state after each step, least importance per ms saved first."""
    groups = allocator.groups
    ranked = [torch.sort(allocator.normalised_scores(g)).values.tolist() for g in groups]
    widths = _steps_of(allocator, model)
    position = [0] * len(groups)  # index into widths[g] of the kept width
    masks = {g.root: first_removed(g.size, g.size) for g in groups}
    touching = [
        [i for i, layer in enumerate(model.layers) if any(k.root == g.root for k in layer.links)]
        for g in groups
    ]
    layer_ms = [model.layer_ms(layer, masks) for layer in model.layers]
    total = model.calibrated_ms(model.fixed_ms + sum(layer_ms), masks)
    path = [PathPoint([g.size for g in groups], total)]
    while True:
        best: tuple[float, int, list[float]] | None = None
        for g, group in enumerate(groups):
            if position[g] + 1 >= len(widths[g]):
                continue
            now, after = widths[g][position[g]], widths[g][position[g] + 1]
            trial = {**masks, group.root: first_removed(group.size, after)}
            new_ms = [model.layer_ms(model.layers[i], trial) for i in touching[g]]
            saved = sum(layer_ms[i] for i in touching[g]) - sum(new_ms)
            if saved <= 0:
                continue  # a step that saves nothing never pays for the channels it removes
            importance = sum(ranked[g][group.size - now : group.size - after])
            if best is None or importance / saved < best[0]:
                best = (importance / saved, g, new_ms)
        if best is None:
            return path
        _, g, new_ms = best
        position[g] += 1
        masks[groups[g].root] = first_removed(groups[g].size, widths[g][position[g]])
        for i, ms in zip(touching[g], new_ms, strict=True):
            layer_ms[i] = ms
        kept = [widths[i][position[i]] for i in range(len(groups))]
        path.append(PathPoint(kept, model.calibrated_ms(model.fixed_ms + sum(layer_ms), masks)))


def within_budget(path: list[PathPoint], budget_ms: float) -> PathPoint:
    """The first (most important) state predicted at or under ``budget_ms``, else the last."""
    for point in path:
        if point.predicted_ms <= budget_ms:
            return point
    return path[-1]


def meet_latency(allocator: Allocator, target: Target) -> tuple[PruningPlan, float]:
    """A plan whose measured latency ratio is within the tolerance of ``target.ratio``; returns
    it with that measured ratio."""
    source: LatencySource | None = allocator.settings.latency
    if source is None:
        raise SecateursError("a latency target needs a latency source (backend, batch size)")
    model = source.model_for(allocator.graph)
    path = greedy_path(allocator, model)
    asked, lowest = target.ratio, path[-1].predicted_ms / model.dense_ms
    if lowest > asked * (1 + LATENCY_TOLERANCE):  # predicted out of reach: measure before refusing
        measured = source.measured_ratio(allocator.graph, allocator.plan_from_counts(path[-1].kept))
        if measured > asked * (1 + LATENCY_TOLERANCE):
            raise SecateursError(
                f"a latency ratio of {asked:g} cannot be met without emptying a layer: the most "
                f"this method can prune measures {measured:.3f} in {source.spec.backend}"
            )
    internal, best = asked, None
    for correction in range(allocator.settings.max_corrections):
        point = within_budget(path, internal * model.dense_ms)
        plan = allocator.plan_from_counts(point.kept)
        measured = source.measured_ratio(allocator.graph, plan)
        error = abs(measured / asked - 1)
        log.info("latency allocation %d: predicted %.3f, measured %.3f, asked %.3f",
                 correction + 1, point.predicted_ms / model.dense_ms, measured, asked)  # fmt: skip
        if best is None or error < best[0]:
            best = (error, plan, measured)
        if error <= LATENCY_TOLERANCE:
            break
        internal = min(0.999, max(1e-4, internal * asked / measured))
    assert best is not None
    if best[0] > LATENCY_TOLERANCE:
        log.warning("the closest plan found measures a latency ratio of %.3f for a target of %g",
                    best[2], asked)  # fmt: skip
    return best[1], best[2]
