"""A trial removal before pruning: the safety net under the structure checks.

The dependency graph can be wrong about a structure the checks in :mod:`.structures` do not
know. Before a plan is made, :func:`verify_groups` removes one or two channels of every prunable
group from a copy of the model and compares it with the same channels masked on the model itself
(the invariant: masked == pruned). When that fails, the groups are bisected to find the ones that
break it, and those are kept whole with the error as the reason. A model the graph gets right
costs one trial (one trace of the copy and one surgery); the number of trials is bounded
(:data:`MAX_TRIALS`): when the bound is reached, every group still suspect is kept whole.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import torch
from torch import Tensor, nn

from secateurs.device import model_device
from secateurs.errors import SecateursError, first_line
from secateurs.pruning.graph import ChannelGraph, ChannelGroup
from secateurs.pruning.masks import apply_masks
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.surgery import remove_channels

log = logging.getLogger(__name__)
MAX_TRIALS = 16
TOLERANCE = 1e-4  # relative difference of masked and pruned outputs accepted


def _probe_plan(groups: list[ChannelGroup]) -> PruningPlan:
    """One channel of each group, or two (first and last) where three or more are left: a cut
    at a wrong offset shows at one end or the other."""
    return PruningPlan(
        {g.root: sorted({0, g.size - 1}) if g.size >= 3 else [g.size - 1] for g in groups}
    )


class _Trials:
    def __init__(self, graph: ChannelGraph) -> None:
        self.graph = graph
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(2, *graph.input_size, generator=generator)
        self.images = images.to(model_device(graph.model))
        self.count = 0

    def error(self, groups: list[ChannelGroup]) -> str | None:
        """Why removing the probe channels of ``groups`` breaks the invariant (None: it holds)."""
        self.count += 1
        plan, model = _probe_plan(groups), self.graph.model
        masks = apply_masks(self.graph, plan)
        try:
            masked = _layer_outputs(model, self.images)
        finally:
            masks.remove()
        pruned_model = copy.deepcopy(model)
        try:
            remove_channels(ChannelGraph(pruned_model, self.graph.input_size), plan)
            pruned = _layer_outputs(pruned_model, self.images)
        except (SecateursError, RuntimeError, IndexError, ValueError) as error:
            return first_line(error)
        return _first_difference(masked, pruned)

    def culprits(self, groups: list[ChannelGroup], error: str) -> dict[str, str]:
        """{root: error} of the groups in ``groups`` (whose trial failed with ``error``)."""
        if len(groups) == 1:
            return {groups[0].root: error}
        if self.count >= MAX_TRIALS:
            return {g.root: f"not verified within {MAX_TRIALS} trials ({error})" for g in groups}
        half = len(groups) // 2
        found: dict[str, str] = {}
        for part in (groups[:half], groups[half:]):
            part_error = self.error(part)
            if part_error is not None:
                found.update(self.culprits(part, part_error))
        if not found:  # each half holds, together they do not: keep them all
            return {g.root: f"breaks together with other groups ({error})" for g in groups}
        return found


def _layer_outputs(model: nn.Module, images: Tensor) -> dict[str, list[Tensor]]:
    """Every named layer's output tensors (in call order) and the model's (under "")."""
    found: dict[str, list[Tensor]] = {}

    def keep(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if isinstance(output, Tensor):
                found.setdefault(name, []).append(output.detach())

        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            found[""] = [model(images)]
    finally:
        for handle in handles:
            handle.remove()
    return found


def _first_difference(
    masked: dict[str, list[Tensor]], pruned: dict[str, list[Tensor]]
) -> str | None:
    """Where the pruned model's layers differ from the masked model's: compared wherever a layer
    kept its output shape (a layer that lost channels is compared through its consumers), so a
    wrong channel shows where it happens, before a deep random network washes it out."""
    if pruned[""][0].shape != masked[""][0].shape:
        shapes = tuple(masked[""][0].shape), tuple(pruned[""][0].shape)
        return f"the output shape changed from {shapes[0]} to {shapes[1]}"
    for name, outputs in masked.items():
        for expected, got in zip(outputs, pruned.get(name, []), strict=False):
            if expected.shape != got.shape:
                continue
            scale = expected.abs().max().clamp_min(1e-12)
            difference = float((expected - got).abs().max() / scale)
            if difference > TOLERANCE:
                where = name or "the output"
                return f"pruned differs from masked at {where} by {difference:.1e}"
    return None


def verify_groups(graph: ChannelGraph) -> list[ChannelGroup]:
    """Keep whole the prunable groups whose trial removal breaks the model or makes it differ
    from the masked model; returns them (``reason`` says what happened)."""
    groups = graph.prunable_groups
    if not groups:
        return []
    model = graph.model
    was_training = model.training
    model.eval()  # BatchNorm statistics fixed: the invariant holds in eval mode
    try:
        trials = _Trials(graph)
        error = trials.error(groups)
        bad = {} if error is None else trials.culprits(groups, error)
    finally:
        model.train(was_training)
    failed = [g for g in groups if g.root in bad]
    for group in failed:
        group.prunable, group.structural = False, True
        group.reason = f"a trial removal of its channels failed: {bad[group.root]}"
    if failed:
        log.info("trial removal: %d group(s) kept whole in %d trial(s)", len(failed), trials.count)
    return failed
