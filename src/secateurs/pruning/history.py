"""Replay a recorded pruning on a freshly built model (how a pruned model reloads from JSON)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from secateurs.errors import SecateursError
from secateurs.pruning.modules import recorded_conv, swap_module
from secateurs.pruning.record import ManifestPruning
from secateurs.pruning.tracing import groups_of, trace


def replay_pruning(model: nn.Module, pruning: ManifestPruning, input_size: Sequence[int]) -> None:
    """Apply a manifest's pruning record to ``model`` in place: the rounds of removed channels
    (Torch-Pruning's history lists), then compact and grouped convolutions.

    Several rounds (iterative pruning) are replayed in order, each on a graph of the shapes the
    previous round left.
    """
    rounds = pruning.rounds.histories
    was_training = model.training
    for history in rounds:
        if not history:
            continue
        # traced as the pruning was (recorded concatenation widths, barriers cut), so each
        # recorded group is rebuilt with the same members
        graph = trace(model, input_size).dependency_graph
        try:
            recorded = [[name, bool(out), list(idx)] for name, out, idx in history]
            with groups_of(graph):
                graph.load_pruning_history(recorded)
        except (AttributeError, ValueError, IndexError, RuntimeError) as error:
            raise SecateursError(f"cannot replay the recorded pruning: {error}") from None
    if pruning.compact_columns is not None:
        replace_compact_convs(model, pruning.compact_columns.layers)
    if pruning.diverse_groups is not None:  # grouped layers, after any channel pruning
        from secateurs.pruning.sgcnn.diverse_conv import replace_diverse_convs

        replace_diverse_convs(model, pruning.diverse_groups.layers)
    model.train(was_training)


def compact_columns_record(model: nn.Module) -> dict[str, list[int]]:
    """{name: kept column indices (flattened (C_in, kh, kw))} of every compact convolution in
    ``model``: what :func:`replace_compact_convs` needs to rebuild them."""
    from secateurs.pruning.spp.compact_conv import CompactConv2d

    return {
        name: torch.nonzero(module.column_keep().flatten()).flatten().tolist()
        for name, module in model.named_modules()
        if isinstance(module, CompactConv2d)
    }


def replace_compact_convs(model: nn.Module, record: dict[str, list[int]]) -> None:
    """Replace each named convolution by a :class:`CompactConv2d` of its recorded columns (the
    weights are loaded afterwards, like every other parameter)."""
    from secateurs.pruning.spp.compact_conv import CompactConv2d

    for name, kept in record.items():
        conv = recorded_conv(model, name, "compact")
        keep = torch.zeros(conv.weight[0].numel(), dtype=torch.bool)
        try:
            keep[torch.tensor(kept, dtype=torch.long)] = True
        except IndexError:
            raise SecateursError(f"the recorded columns of {name!r} do not fit it") from None
        swap_module(model, name, CompactConv2d(conv, keep.view_as(conv.weight[0])))
