"""Input channels that no group of any consumer reads: removed from their producers through the
engine, where that makes the model faster.

Removing them always cuts MACs, but not always time: a handful removed leaves odd widths (63 of
64), which fall off onnxruntime's blocked kernels and made ResNet-20's SG-CNN models 0.73-0.92x
of the unpruned model's speed (docs/results/sgcnn.md). So by default the removal is timed on the
whole model against the model that keeps them, and kept only if it is faster (in the 7 runs
compacted again that way, no removal was: 0.53-0.96x).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from secateurs.errors import SecateursError
from secateurs.measurement.latency import LatencySettings
from secateurs.pruning.compaction.dead_channels import dead_channels
from secateurs.pruning.compaction.fastest_form import CONVS, timed_speedups
from secateurs.pruning.compaction.layer_groups import LayerGroups
from secateurs.pruning.graph import IN, OUT, ChannelGraph
from secateurs.pruning.surgery import remove_channels

log = logging.getLogger(__name__)
UNREAD_POLICIES = ("if-faster", "always", "never")


def check_policy(policy: str) -> None:
    """One line when ``policy`` is not one of :data:`UNREAD_POLICIES`."""
    if policy not in UNREAD_POLICIES:
        raise SecateursError(
            f"unread channels: one of {', '.join(UNREAD_POLICIES)}, not {policy!r}"
        )


def remove_unread_if_faster(
    model: nn.Module,
    input_size: Sequence[int],
    groups: Mapping[str, LayerGroups],
    timing: LatencySettings,
    policy: str = "if-faster",
) -> tuple[list, dict[str, LayerGroups], dict[str, Any]]:
    """The unread channels removed from ``model`` in place by ``policy``: ``always``, ``never``,
    or ``if-faster``: the whole model with them removed timed against it as it is, interleaved,
    in the deciding backend (onnxruntime when installed); untimed (``timing.repeats`` 0) they
    are removed. Returns the engine's history, the groupings re-indexed to the kept channels,
    and the record of the decision."""
    check_policy(policy)
    if policy == "never":
        return [], dict(groups), {"policy": policy, "removed": False}
    if policy == "always" or not timing.repeats:  # nothing to time: remove them
        history, remaining = remove_unread_channels(model, input_size, groups)
        record = {"policy": policy, "channels": removed_channels(history)}
        return history, remaining, record | {"removed": bool(history)}
    trial = copy.deepcopy(model)
    history, _ = remove_unread_channels(trial, input_size, groups)
    check: dict[str, Any] = {"policy": policy, "channels": removed_channels(history)}
    if not history:
        return [], dict(groups), check | {"removed": False}
    speedups, (mean,) = timed_speedups([model.eval(), trial.eval()], input_size, timing)
    check.update(speedups=speedups, geometric_mean=round(mean, 4), removed=mean > 1.0)
    log.info("%d unread channels removed: the model runs at %.2fx", check["channels"], mean)
    if not check["removed"]:
        return [], dict(groups), check
    history, remaining = remove_unread_channels(model, input_size, groups)  # as in the trial
    return history, remaining, check


def removed_channels(history: list) -> int:
    """Channels the engine's history removed (its output-channel entries)."""
    return sum(len(indices) for _, is_out, indices in history if is_out)


def remove_unread_channels(
    model: nn.Module, input_size: Sequence[int], groups: Mapping[str, LayerGroups]
) -> tuple[list, dict[str, LayerGroups]]:
    """Remove the channels no consumer reads; returns the engine's history and the groupings
    re-indexed to the layers' new channels."""
    graph = ChannelGraph(model, input_size)
    columns = {}
    for name, layer in groups.items():
        module = model.get_submodule(name)
        if isinstance(module, CONVS):  # a fully connected layer's inputs stay (masked dense)
            columns[name] = layer.keep.any(0)[:, None, None].expand(-1, *module.kernel_size)
    plan = dead_channels(graph, columns)
    rows = {name: torch.ones(len(g.labels), dtype=torch.bool) for name, g in groups.items()}
    cols = {name: torch.ones(g.keep.shape[1], dtype=torch.bool) for name, g in groups.items()}
    for group in graph.groups:
        removed = set(plan.removals.get(group.root, []))
        for member in group.members if removed else []:
            alive = {OUT: rows, IN: cols}[member.direction].get(member.name)
            if alive is None or not isinstance(member.module, CONVS):
                continue
            for index, root in zip(member.indices, member.root_indices, strict=True):
                alive[index] = alive[index] and root not in removed
    history = remove_channels(graph, plan) if plan.removals else []
    remaining = {
        name: LayerGroups(
            [label for label, kept in zip(g.labels, rows[name].tolist(), strict=True) if kept],
            g.keep[rows[name]][:, cols[name]],
        )
        for name, g in groups.items()
    }
    return history, remaining
