"""Compaction after SPP: remove what is fully gone, run the rest of the column sparsity compact,
but only where that is measured to be faster.

1. Channels: an input channel of a convolution whose kh * kw columns are all pruned is an output
   channel of its producer's group. When *every* layer reading that group channel (every
   convolution or linear layer among the group's consumers) has dropped it, the channel is
   removed physically through the engine (:class:`PruningPlan` + :func:`remove_channels`): the
   producing filters, their BatchNorm, and the consumers' dead columns go. A group never loses its
   last channel. Channel-granularity SPP ends here: its plan is exactly the pruned channels.
2. Columns: every remaining convolution with pruned columns gets its mask baked into its weights
   (the "dense" form) and is compared with a :class:`CompactConv2d` on its own input shape,
   interleaved (:func:`secateurs.measurement.latency.compare`). The compact module replaces
   the dense one only where it is faster (geometric mean of the speed-ups over the measured
   batch sizes); each layer's record says which form was chosen and the measured ratios.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from secateurs.measurement.latency import LatencySettings, compare
from secateurs.models.modules import swap_module
from secateurs.pruning.compaction.compact_conv import CompactConv2d
from secateurs.pruning.compaction.dead_channels import max_relative_difference, remove_dead_channels
from secateurs.pruning.compaction.layers import conv_input_sizes

log = logging.getLogger(__name__)
EQUALITY_TOLERANCE = 1e-5  # max |compact - dense| / max |dense|


@dataclass
class LayerChoice:
    name: str
    kept_columns: int
    columns: int
    choice: str  # "compact", "dense" (slower compact), "dense-unsupported", "compact-untimed"
    speedups: dict[int, float] = field(default_factory=dict)  # batch -> dense / compact median
    max_rel_diff: float = 0.0


@dataclass
class CompactionReport:
    plan: dict[str, Any]  # the removed channels (PruningPlan JSON)
    history: list[list[Any]]  # Torch-Pruning's history of the removal
    layers: list[LayerChoice]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compact_conv(
    conv: nn.Conv2d,
    column_keep: Tensor,
    input_size: Sequence[int],
    settings: LatencySettings | None = None,
    name: str = "",
) -> tuple[nn.Module, LayerChoice]:
    """The faster of ``conv`` with its pruned columns zeroed (in place) and a
    :class:`CompactConv2d`, measured on inputs of ``input_size`` (C, H, W)."""
    with torch.no_grad():
        conv.weight.mul_(column_keep.unsqueeze(0).to(conv.weight))
    record = LayerChoice(name, int(column_keep.sum()), column_keep.numel(), "dense-unsupported")
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return conv, record
    compact = CompactConv2d(conv, column_keep.bool())
    was_training = conv.training
    conv.eval()
    with torch.no_grad():
        images = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(0))
        record.max_rel_diff = max_relative_difference(compact(images), conv(images))
    if record.max_rel_diff > EQUALITY_TOLERANCE:
        raise AssertionError(f"{name}: compact conv differs from dense by {record.max_rel_diff}")
    if settings is not None and settings.repeats == 0:  # no timing asked: compact, untimed
        record.choice = "compact-untimed"
        conv.train(was_training)
        return compact.train(was_training), record
    timings = compare([conv, compact], input_size, settings)
    record.speedups = {batch: rows[1]["ratio"] for batch, rows in timings.items()}
    mean_log = sum(math.log(r) for r in record.speedups.values()) / len(record.speedups)
    record.choice = "compact" if mean_log > 0 else "dense"
    conv.train(was_training)
    return (compact.train(was_training) if record.choice == "compact" else conv), record


def compact_model(
    model: nn.Module,
    input_size: Sequence[int],
    column_keeps: Mapping[str, Tensor],
    settings: LatencySettings | None = None,
) -> CompactionReport:
    """Compact ``model`` in place after column or input-channel SPP.

    ``column_keeps[name]``: the kept columns of convolution ``name``, (C_in/g, kh, kw) bool, or a
    weight-shaped mask as :meth:`SPPCallback.keep_masks` returns.
    """
    choices, columns = [], {}
    for name, keep in column_keeps.items():
        conv = model.get_submodule(name)
        if conv.groups == 1:
            columns[name] = _columns_of(keep)
            continue
        with torch.no_grad():  # grouped: the mask baked, no compact form (yet)
            conv.weight.mul_(torch.broadcast_to(keep, conv.weight.shape).to(conv.weight))
        # a column of group g is kept when any of the group's filters keeps it
        full = torch.broadcast_to(keep.bool(), conv.weight.shape)
        kept = int(full.reshape(conv.groups, conv.out_channels // conv.groups, -1).any(1).sum())
        total = conv.weight[0].numel() * conv.groups
        choices.append(LayerChoice(name, kept, total, "dense-unsupported"))
    plan, history, columns = remove_dead_channels(model, input_size, columns)
    sizes = conv_input_sizes(model, input_size)
    for name, keep in columns.items():
        conv = model.get_submodule(name)
        if bool(keep.all()):
            continue
        module, record = compact_conv(conv, keep, sizes[name], settings, name)
        choices.append(record)
        swap_module(model, name, module)
        log.info(
            "%s: %d/%d columns, %s (speed-ups %s)",
            name,
            record.kept_columns,
            record.columns,
            record.choice,
            record.speedups,
        )
    return CompactionReport(plan.to_json(), history, choices)


def _columns_of(keep: Tensor) -> Tensor:
    """(C_in, kh, kw) from a weight-shaped keep mask (a column is kept if any filter keeps it)."""
    keep = keep.bool()
    return keep.any(0) if keep.ndim == 4 else keep
