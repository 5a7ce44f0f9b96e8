"""Replay a recorded pruning on a freshly built model (how a pruned model reloads from JSON)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from secateurs.errors import SecateursError
from secateurs.pruning.compaction.compact_conv import replace_compact_convs
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
        from secateurs.pruning.compaction.diverse_conv import replace_diverse_convs

        replace_diverse_convs(model, pruning.diverse_groups.layers)
    model.train(was_training)
