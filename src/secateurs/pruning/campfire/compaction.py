"""After Campfire: each granularity in the form that runs it.

- filter: the removed channels removed physically through the engine's surgery;
- kernel (and kernel+window): every filter reads a fixed number of input channels, which is
  SG-CNN's diverse group convolution with one group per filter: channels no filter reads are
  removed from their producers, then each layer runs gathered and grouped where that was measured
  faster than the dense layer (the choice per layer is SG-CNN's :func:`choose_form`);
- window and unstructured: no kernel here computes them faster than dense in the deployment
  runtime; the CSR path (:mod:`.sparse_conv`) is timed against the dense layer in eager and
  reported, and the model keeps its dense layers with the zeros (window layers are also stored
  compactly, :mod:`.window_store`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from torch import Tensor, nn

from secateurs.measurement.latency import LatencySettings, compare
from secateurs.pruning.campfire.sparse_conv import CSRConv2d
from secateurs.pruning.compaction.fastest_form import make_diverse_if_faster
from secateurs.pruning.compaction.layer_groups import LayerGroups
from secateurs.pruning.compaction.layers import conv_input_sizes
from secateurs.pruning.compaction.unread import remove_unread_if_faster
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.surgery import remove_channels

log = logging.getLogger(__name__)


def compact_filters(model: nn.Module, input_size: Sequence[int], plan: PruningPlan) -> list:
    """The plan's channels removed; returns the engine's history."""
    if not plan.removals:
        return []
    return remove_channels(ChannelGraph(model, input_size), plan)


def compact_kernels(
    model: nn.Module,
    input_size: Sequence[int],
    keep: Mapping[str, Tensor],
    timing: LatencySettings,
) -> tuple[list, list[dict], dict, dict]:
    """Kernel-level layers as diverse group convolutions of one filter per group (where faster,
    alone and in the whole model), after the channels no filter reads are removed where that is
    faster; returns the engine's history, each layer's form record, the whole-model check and
    the unread channels' check."""
    groups = {
        name: LayerGroups(list(range(mask.shape[0])), mask.flatten(2).any(2))
        for name, mask in keep.items()
    }
    history, remaining, unread = remove_unread_if_faster(model, input_size, groups, timing)
    forms, whole = make_diverse_if_faster(model, input_size, remaining, timing)
    return history, [asdict(form) for form in forms], whole, unread


def time_sparse_path(
    model: nn.Module, input_size: Sequence[int], names: Sequence[str], timing: LatencySettings
) -> list[dict]:
    """Per layer: the CSR path's eager speed-up over the dense layer (geometric mean over the
    batch sizes; the dense form is kept either way, see the module's text)."""
    sizes = conv_input_sizes(model, input_size)
    found = []
    for name in names:
        conv = model.get_submodule(name)
        record: dict = {"name": name, "choice": "dense"}
        if not isinstance(conv, nn.Conv2d) or isinstance(conv.padding, str):
            record["sparse_path"] = "none (not a zero-padded convolution)"
        elif not timing.repeats:
            record["sparse_path"] = "untimed"
        else:
            timed = compare([conv.eval(), CSRConv2d(conv)], sizes[name], timing)
            ratios = [rows[1]["ratio"] for rows in timed.values()]
            speedup = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
            record["csr_speedup_eager"] = {str(b): rows[1]["ratio"] for b, rows in timed.items()}
            record["sparse_path"] = f"csr {speedup:.2f}x eager; dense kept"
        log.info("%s: %s", name, record["sparse_path"])
        found.append(record)
    return found
