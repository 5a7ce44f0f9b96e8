"""The fastest form of each grouped layer (SG-CNN, Campfire's kernel level), and the whole-model
check. Every grouped convolution becomes a
:class:`DiverseGroupConv2d` (one grouped convolution over the gathered inputs, or one convolution
per group) or stays a dense convolution with zeros, whichever runs faster where it was timed
(the input channels no group reads are removed first, :mod:`.unread`)."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from secateurs.measurement.latency import LatencySettings, compare
from secateurs.models.modules import swap_module
from secateurs.pruning.compaction.diverse_conv import DiverseGroupConv2d
from secateurs.pruning.compaction.layer_groups import LayerGroups, expand_keep
from secateurs.pruning.compaction.layers import conv_input_sizes

log = logging.getLogger(__name__)
CONVS = (nn.Conv2d,)


@dataclass
class LayerForm:
    """One grouped layer's outcome: the form kept and the speed-ups it was chosen on
    (dense median / form median, by backend and batch size)."""

    name: str
    groups: int
    sparsity: float
    choice: str  # "grouped", "per_group", "dense" or "<form>-untimed"
    speedups: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def _speedups(timed: dict[int, list[dict[str, float]]]) -> dict[str, list[float]]:
    return {str(batch): [row["ratio"] for row in rows[1:]] for batch, rows in timed.items()}


def timed_speedups(
    models: Sequence[nn.Module], input_size: Sequence[int], timing: LatencySettings
) -> tuple[dict[str, dict[str, list[float]]], list[float]]:
    """Speed-ups of ``models[1:]`` over ``models[0]``, interleaved, by backend and batch size,
    and each one's geometric mean over the batch sizes in the deciding backend: onnxruntime
    (the deployment runtime) when it runs them, else eager."""
    speedups = {"eager": _speedups(compare(models, input_size, timing))}
    deciding = "eager"
    try:
        from secateurs.measurement.onnx_runtime import compare_onnx

        speedups["onnxruntime"] = _speedups(compare_onnx(models, input_size, timing))
        deciding = "onnxruntime"
    except Exception as error:  # onnxruntime missing, or the export refused: eager decides
        log.warning("no onnxruntime timing (%s); deciding on eager", error)
    rows = speedups[deciding].values()
    means = [
        math.exp(sum(math.log(row[k]) for row in rows) / len(rows)) for k in range(len(models) - 1)
    ]
    return speedups, means


def choose_form(
    name: str,
    conv: nn.Conv2d,
    layer: LayerGroups,
    input_size: Sequence[int],
    timing: LatencySettings,
) -> tuple[nn.Module, LayerForm]:
    """The fastest of the dense convolution and the diverse module's two forms, timed on this
    layer's input interleaved, in onnxruntime (the deployment runtime) when it is installed,
    else in eager; untimed (``timing.repeats`` 0): the diverse module in its cheaper form."""
    candidates = [
        DiverseGroupConv2d.from_masked(conv, layer.labels, layer.keep, form)
        for form in ("grouped", "per_group")
    ]
    record = LayerForm(name, len(set(layer.labels)), round(layer.sparsity, 5), "")
    if not timing.repeats:
        chosen = DiverseGroupConv2d.from_masked(conv, layer.labels, layer.keep, "auto")
        record.choice = f"{chosen.form}-untimed"
        return chosen, record
    models = [conv.eval(), *(c.eval() for c in candidates)]
    record.speedups, means = timed_speedups(models, input_size, timing)
    best = max(range(2), key=lambda k: means[k])
    if means[best] <= 1.0:
        record.choice = "dense"
        return conv, record
    record.choice = candidates[best].form
    return candidates[best], record


def make_diverse_if_faster(
    model: nn.Module,
    input_size: Sequence[int],
    groups: Mapping[str, LayerGroups],
    timing: LatencySettings,
) -> tuple[list[LayerForm], dict[str, Any]]:
    """:func:`make_diverse`, then the whole model timed against its dense form (the masked
    convolutions): layers faster alone can be slower together (measured on ResNet-20, see
    docs/results/sgcnn.md), so when the whole model is not faster every layer goes back to
    dense. Returns the layer records and the whole-model check."""
    dense = copy.deepcopy(model).eval()
    forms = make_diverse(model, input_size, groups, timing)
    for name, layer in groups.items():
        with torch.no_grad():
            conv = dense.get_submodule(name)
            conv.weight.mul_(expand_keep(layer.keep, conv.weight))
    if not timing.repeats or all(form.choice.startswith("dense") for form in forms):
        return forms, {}
    speedups, (mean,) = timed_speedups([dense, model.eval()], input_size, timing)
    check = {"speedups": speedups, "geometric_mean": round(mean, 4), "kept": mean > 1.0}
    if mean <= 1.0:
        log.info("the whole model with its grouped layers runs at %.2fx: all layers dense", mean)
        for form in forms:
            if not form.choice.startswith("dense"):
                swap_module(model, form.name, dense.get_submodule(form.name))
                form.choice = f"dense (whole model {mean:.2f}x as {form.choice})"
    return forms, check


def make_diverse(
    model: nn.Module,
    input_size: Sequence[int],
    groups: Mapping[str, LayerGroups],
    timing: LatencySettings,
) -> list[LayerForm]:
    """Every grouped layer of ``model`` in its chosen form, in place; dense layers keep their
    pruned connections at zero."""
    sizes = conv_input_sizes(model, input_size)
    forms = []
    for name, layer in groups.items():
        conv = model.get_submodule(name)
        with torch.no_grad():
            conv.weight.mul_(expand_keep(layer.keep, conv.weight))
        if not isinstance(conv, CONVS):  # fully connected: dense with its zeros
            forms.append(LayerForm(name, len(set(layer.labels)), layer.sparsity, "dense (linear)"))
            continue
        module, record = choose_form(name, conv, layer, sizes[name], timing)
        forms.append(record)
        swap_module(model, name, module)
        pruned = round(100 * record.sparsity)
        log.info("%s: %d groups, %d%% pruned: %s", name, record.groups, pruned, record.choice)
    return forms
