"""Replay a recorded pruning on a freshly built model (how a pruned model reloads from JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from secateurs.errors import SecateursError
from secateurs.pruning.compaction.compact_conv import replace_compact_convs
from secateurs.pruning.tracing import groups_of, trace


def replay_pruning(model: nn.Module, pruning: dict[str, Any], input_size: Sequence[int]) -> None:
    """Apply ``pruning["history"]`` (Torch-Pruning's history lists) to ``model`` in place.

    Several rounds (iterative pruning) are replayed in order, each on a graph of the shapes the
    previous round left.
    """
    rounds = pruning.get("rounds") or [pruning.get("history", [])]
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
    replace_compact_convs(model, pruning.get("compact_columns") or {})
    if pruning.get("diverse_groups"):  # SG-CNN's grouped layers, after any channel pruning
        from secateurs.pruning.compaction.diverse_conv import replace_diverse_convs

        replace_diverse_convs(model, pruning["diverse_groups"])
    model.train(was_training)
