"""Replay a recorded pruning on a freshly built model (how a pruned model reloads from JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from secateurs.errors import SecateursError


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
        with torch.enable_grad():
            graph = tp.DependencyGraph().build_dependency(
                model, torch.randn(1, *input_size), verbose=False
            )
        try:
            graph.load_pruning_history([[name, bool(out), list(idx)] for name, out, idx in history])
        except (AttributeError, ValueError, IndexError, RuntimeError) as error:
            raise SecateursError(f"cannot replay the recorded pruning: {error}") from None
    model.train(was_training)
