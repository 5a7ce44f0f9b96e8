"""Physical removal of a plan's channels through Torch-Pruning's groups.

This module knows plans and graphs, never the methods that made the plan. The surgery is recorded
as Torch-Pruning's pruning history, a JSON-able list that :mod:`secateurs.pruning.history` replays
on a freshly built model to reload a pruned model without unpickling it.
"""

from __future__ import annotations

from typing import Any

import torch

from secateurs.device import model_device
from secateurs.errors import SecateursError, first_line
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.plan import PruningPlan, input_scale_vector


def remove_channels(graph: ChannelGraph, plan: PruningPlan) -> list[list[Any]]:
    """Remove ``plan``'s channels from ``graph.model`` in place; returns the pruning history.

    The plan's ``input_scales`` are multiplied into the consumers' weights first (they are kept
    in the saved weights; the history records only the removal).

    The graph is spent afterwards (its groups describe the old shapes): build a new one to prune
    again.
    """
    plan.validate(graph)
    model = graph.model
    was_training = model.training
    try:
        return _remove(graph, plan, model)
    finally:
        model.train(was_training)


def _remove(graph: ChannelGraph, plan: PruningPlan, model: torch.nn.Module) -> list[list[Any]]:
    with torch.no_grad():
        before = model.eval()(torch.zeros(1, *graph.input_size, device=model_device(model))).shape
    history_start = len(graph.dependency_graph.pruning_history())
    with torch.no_grad():  # rescaling first: the factors are indexed before any removal
        for layer, factors in plan.input_scales.items():
            if factors:
                module = graph.module(layer)
                module.weight.mul_(input_scale_vector(module, factors))
    for group in graph.groups:
        indices = plan.removals.get(group.root, [])
        if not indices:
            continue
        try:
            graph.torch_pruning_group(group, indices).prune()
        except (RuntimeError, IndexError, ValueError) as error:
            raise SecateursError(f"surgery failed on group {group.root}: {error}") from None
    try:
        with torch.no_grad():
            after = model(torch.zeros(1, *graph.input_size, device=model_device(model))).shape
    except RuntimeError as error:  # a structure the guards missed: say so in one line
        first = first_line(error)
        raise SecateursError(f"the pruned model no longer runs: {first}") from None
    if after != before:
        raise SecateursError(f"surgery changed the output shape from {before} to {after}")
    history = graph.dependency_graph.pruning_history()[history_start:]
    return [[name, bool(is_out), [int(i) for i in indices]] for name, is_out, indices in history]
