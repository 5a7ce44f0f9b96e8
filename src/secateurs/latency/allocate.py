"""Scores + a latency target -> a plan: keep the most importance whose latency fits, measured.

A greedy knapsack (after HALP, Shen et al., NeurIPS 2022): each group shrinks in steps, from its
full width down to its floor (:func:`floor_width`, the fewest channels the allocator lets it keep),
through the widths the table calls *efficient* (:meth:`LatencyModel.efficient_widths`: faster
than any wider one) and, below the narrowest of those, the table's own candidate widths. A step
costs the summed (normalised) scores of the channels it removes. A step the table prices (it
saves more than ``EFFICIENCY_MARGIN`` of the time of the layers it narrows, their other widths as
they are at that point) goes by least importance per millisecond saved; a step the table cannot
price (at batch 1 a layer timed alone is mostly its call and layout conversion, so narrowing it
shows ~nothing, while inside the whole model it still saves) is never dropped: it comes after
every priced one, by least importance per multiply-accumulate saved. So the path always ends at
the thinnest model the floor allows.

That thinnest model is timed first (interleaved with the dense one): a target it does not reach
is refused with its measured ratio, and the ratio is kept for the report
(``LatencySource.floor``). The first plan tried is the first state *predicted* (calibrated,
:mod:`secateurs.latency.calibration`) within budget; then the path itself is searched by
measurement, between the nearest measured states either side of the target, interpolating on the
states' multiply-accumulates (they fall at every step, where the prediction can stay flat), until
the measured ratio is within ``LATENCY_TOLERANCE`` of the target.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from secateurs.errors import SecateursError
from secateurs.latency.layers import candidate_widths
from secateurs.latency.predict import LatencyModel, first_removed
from secateurs.latency.table import EFFICIENCY_MARGIN
from secateurs.pruning.allocation import kept_count
from secateurs.pruning.plan import PruningPlan

if TYPE_CHECKING:
    from collections.abc import Callable

    from secateurs.latency.source import LatencySource
    from secateurs.pruning.allocation import Allocator, Target
    from secateurs.pruning.graph import ChannelGroup

log = logging.getLogger(__name__)
LATENCY_TOLERANCE = 0.03  # relative error allowed on the measured latency ratio
UNPRICED = 1  # the rank of a step the table prices at ~nothing (priced steps: 0, first)


@dataclass
class PathPoint:
    kept: list[int]  # channels kept per prunable group (allocator order)
    predicted_ms: float
    macs: float = 0.0  # the tabled layers' multiply-accumulates (falls at every step)


def floor_width(allocator: Allocator, group: ChannelGroup) -> int:
    """The fewest channels ``allocator`` lets ``group`` keep: its kept count when none is wanted
    (a fraction of its width, more at the stem and the classifier's input, at least
    ``--min-channels``, rounded up to ``--round-to``: :mod:`secateurs.pruning.floor`)."""
    return kept_count(group, 0, allocator.settings)


def _steps_of(allocator: Allocator, model: LatencyModel) -> list[list[int]]:
    """Per group, the widths it may keep, widest first, down to :func:`floor_width`: the table's
    efficient widths, then below the narrowest of them the table's candidate widths (the table
    prices nothing there; the whole model may still save). With ``round_to`` above 1, only
    multiples of it. A group no tabled layer touches keeps its width (no latency sees it)."""
    allowed = model.efficient_widths(allocator.graph)
    multiple = allocator.settings.round_to
    steps = []
    for group in allocator.groups:
        if group.root not in allowed:
            steps.append([group.size])
            continue
        floor = floor_width(allocator, group)
        tail = set(candidate_widths(group.size, model.grid))
        efficient = set(allowed[group.root])
        if multiple > 1:
            tail = set(range(multiple, group.size, multiple))
            efficient &= tail
        narrowest = min(efficient | {group.size})
        widths = efficient | {w for w in tail if w < narrowest} | {floor, group.size}
        steps.append(sorted({w for w in widths if w >= floor}, reverse=True))
    return steps


class _Walk:
    """The knapsack's state: each group's position in its widths, and each tabled layer's
    milliseconds and multiply-accumulates at the current widths."""

    def __init__(self, allocator: Allocator, model: LatencyModel) -> None:
        self.model = model
        self.groups = allocator.groups
        self.ranked = [
            torch.sort(allocator.normalised_scores(g)).values.tolist() for g in self.groups
        ]
        self.widths = _steps_of(allocator, model)
        self.position = [0] * len(self.groups)  # index into widths[g] of the kept width
        self.masks = {g.root: first_removed(g.size, g.size) for g in self.groups}
        self.touching = [
            [
                i
                for i, layer in enumerate(model.layers)
                if any(k.root == g.root for k in layer.links)
            ]
            for g in self.groups
        ]
        self.layer_ms = [model.layer_ms(layer, self.masks) for layer in model.layers]
        self.layer_macs = [layer.macs(self.masks) for layer in model.layers]

    def point(self) -> PathPoint:
        kept = [self.widths[g][self.position[g]] for g in range(len(self.groups))]
        table_ms = self.model.fixed_ms + sum(self.layer_ms)
        return PathPoint(kept, self.model.calibrated_ms(table_ms, self.masks), sum(self.layer_macs))

    def next_step(self) -> tuple[tuple[int, float], int, dict] | None:
        """The cheapest next step: (rank, importance per saving), group, its masks and layers'
        new figures; None when every group is at its floor."""
        best = None
        for g, group in enumerate(self.groups):
            if self.position[g] + 1 >= len(self.widths[g]):
                continue
            now, after = self.widths[g][self.position[g]], self.widths[g][self.position[g] + 1]
            trial = {**self.masks, group.root: first_removed(group.size, after)}
            layers = [self.model.layers[i] for i in self.touching[g]]
            new = {
                "ms": [self.model.layer_ms(layer, trial) for layer in layers],
                "macs": [layer.macs(trial) for layer in layers],
                "mask": trial[group.root],
            }
            before_ms = sum(self.layer_ms[i] for i in self.touching[g])
            saved_ms = before_ms - sum(new["ms"])
            saved_macs = sum(self.layer_macs[i] for i in self.touching[g]) - sum(new["macs"])
            importance = sum(self.ranked[g][group.size - now : group.size - after])
            if saved_ms > EFFICIENCY_MARGIN * before_ms:
                key = (0, importance / saved_ms)
            else:  # the table prices it at ~nothing: after every priced step, by compute saved
                key = (UNPRICED, importance / saved_macs if saved_macs > 0 else math.inf)
            if best is None or key < best[0]:
                best = (key, g, new)
        return best

    def take(self, g: int, new: dict) -> None:
        self.position[g] += 1
        self.masks[self.groups[g].root] = new["mask"]
        for i, ms, macs in zip(self.touching[g], new["ms"], new["macs"], strict=True):
            self.layer_ms[i], self.layer_macs[i] = ms, macs


def greedy_path(allocator: Allocator, model: LatencyModel) -> list[PathPoint]:
    """The dense state, then one state after each step (priced steps first, least importance
    per ms saved; then the unpriced ones), ending with every group at its floor."""
    walk = _Walk(allocator, model)
    path = [walk.point()]
    while (step := walk.next_step()) is not None:
        _, g, new = step
        walk.take(g, new)
        path.append(walk.point())
    return path


def within_budget(path: list[PathPoint], budget_ms: float) -> int:
    """The index of the first (most important) state predicted at or under ``budget_ms``, else
    the last."""
    for index, point in enumerate(path):
        if point.predicted_ms <= budget_ms:
            return index
    return len(path) - 1


def next_index(
    path: list[PathPoint], measured: dict[int, float], asked: float, halve: bool = False
) -> int | None:
    """An unmeasured state between the nearest measured ones either side of ``asked`` (the last
    measured slower, the first measured faster after it), where the line through their measured
    ratios over their multiply-accumulates crosses it (``halve``: half-way between their
    multiply-accumulates, for when the line keeps landing on one side); None when no state lies
    between."""
    slower = max(i for i, ratio in measured.items() if ratio > asked)
    faster = min(
        (i for i, ratio in measured.items() if i > slower and ratio <= asked), default=None
    )
    if faster is None or faster - slower < 2:
        return None
    share = 0.5 if halve else (measured[slower] - asked) / (measured[slower] - measured[faster])
    macs = path[slower].macs + share * (path[faster].macs - path[slower].macs)
    return min(range(slower + 1, faster), key=lambda i: abs(path[i].macs - macs))


def search(
    path: list[PathPoint],
    measure: Callable[[int], float],
    asked: float,
    tries: int,
    measured: dict[int, float],
) -> dict[int, float]:
    """``measured`` (state index: measured ratio; the dense state's and the floor's at least)
    with the states tried added (``measure(index)``): the first state predicted within
    ``asked``, then :func:`next_index` (half-way after two misses on the same side), until one
    is within ``LATENCY_TOLERANCE`` of ``asked`` or ``tries`` are spent."""
    last = len(path) - 1
    index: int | None = within_budget(path, asked * path[0].predicted_ms)
    sides: list[bool] = []  # per state tried: measured slower than asked
    for attempt in range(tries):
        if index is None or index in measured:
            index = next_index(path, measured, asked, halve=sides[-2:] in ([True] * 2, [False] * 2))
        if index is None:
            break
        measured[index] = measure(index)
        log.info("latency allocation %d: state %d of %d, predicted %.3f, measured %.3f, asked %.3f",
                 attempt + 1, index, last, path[index].predicted_ms / path[0].predicted_ms,
                 measured[index], asked)  # fmt: skip
        if abs(measured[index] / asked - 1) <= LATENCY_TOLERANCE:
            break
        sides.append(measured[index] > asked)
        index = None
    return measured


def _refusal(allocator: Allocator, source: LatencySource, asked: float, floor: float) -> str:
    multiple = allocator.settings.round_to
    rounded = f", in multiples of {multiple}" if multiple > 1 else ""
    return (
        f"a latency ratio of {asked:g} cannot be met: the thinnest model the floor allows "
        f"measures {floor:.3f} of the dense latency in {source.spec.backend} at batch "
        f"{source.spec.batch} (every group at its floor: --min-fraction "
        f"{allocator.settings.min_fraction:g}, --ends-min-fraction "
        f"{allocator.settings.ends_fraction:g}, --min-channels {allocator.settings.min_channels}"
        f"{rounded}); ask for {math.ceil(floor * 100) / 100:g} or more"
    )


def meet_latency(allocator: Allocator, target: Target) -> tuple[PruningPlan, float]:
    """A plan whose measured latency ratio is within the tolerance of ``target.ratio``; returns
    it with that measured ratio. Refused only when the thinnest model the floor allows measures
    short of the target; that model's latency is left in ``source.floor`` for the report."""
    source: LatencySource | None = allocator.settings.latency
    if source is None:
        raise SecateursError("a latency target needs a latency source (backend, batch size)")
    model = source.model_for(allocator.graph)
    path = greedy_path(allocator, model)
    asked, last = target.ratio, len(path) - 1

    def measure(index: int) -> float:
        plan = allocator.plan_from_counts(path[index].kept)
        dense_ms, pruned_ms = source.measured_ms(allocator.graph, plan)
        if index == last:
            source.floor = {"ratio": pruned_ms / dense_ms, "ms": pruned_ms, "dense_ms": dense_ms,
                            "min_channels": allocator.settings.min_channels,
                            "round_to": allocator.settings.round_to}  # fmt: skip
            log.info("latency floor: the thinnest model the floor allows measures %.3f",
                     pruned_ms / dense_ms)  # fmt: skip
        return pruned_ms / dense_ms

    floor = measure(last)
    if floor > asked * (1 + LATENCY_TOLERANCE):
        raise SecateursError(_refusal(allocator, source, asked, floor))
    tries = allocator.settings.max_corrections
    measured = search(path, measure, asked, tries, {0: 1.0, last: floor})
    best = min((i for i in measured if i), key=lambda i: abs(measured[i] / asked - 1))
    if abs(measured[best] / asked - 1) > LATENCY_TOLERANCE:
        log.warning("the closest plan found measures a latency ratio of %.3f for a target of %g",
                    measured[best], asked)  # fmt: skip
    return allocator.plan_from_counts(path[best].kept), measured[best]
