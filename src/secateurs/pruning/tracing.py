"""Torch-Pruning's dependency graph, built so that it never raises from inside and never runs
away, with the places it cannot follow marked as *barriers*.

Torch-Pruning traces a model through autograd and ties channels across additions, concatenations,
splits and slices. Where it guesses (the widths a concatenation joins, inferred by walking the
graph) or where the structure divides channels at fixed positions (``torch.split``, ``chunk``,
``x[:, a:b]``: removing a channel before the cut moves the cut), the groups it returns are wrong:
an index beyond a layer's width, a layer emptied, or a forward pass that no longer runs. Here:

- the widths each ``torch.cat`` joins are *recorded* during the trace (a torch function mode), not
  inferred, so concatenations map exactly;
- a channel split, a channel slice, a reshape that regroups channels (split attention, channel
  shuffle), a concatenation whose inputs cannot be matched and any node
  whose index mapping fails are barriers: their dependencies are cut (propagation stops there)
  and every group that reaches one is kept whole (see :mod:`.structures`);
- growing a group is bounded (:data:`MAX_GROUP_ITEMS`): a cycle of slices and concatenations that
  would grow it for minutes ends it instead, and its root is kept whole;
- the index mapping Torch-Pruning recomputes over the whole graph for every group it builds
  (quadratic in a concatenation's inputs: most of DenseNet's pruning time) is recomputed only for
  the concatenations whose widths changed since (:func:`groups_of`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch.overrides import TorchFunctionMode
from torch_pruning.dependency import graph as tp_graph
from torch_pruning.dependency import group as tp_group
from torch_pruning.dependency import index_mapping

from secateurs.device import model_device

OPTYPE = tp.ops.OPTYPE
CAT_FUNCTIONS = {torch.cat, torch.concat, torch.concatenate}
# items one group may collect before it is called a runaway; the largest group of the timm zoo
# at 64x64 (DenseNet-121's, through 58 concatenations) has about 1,100
MAX_GROUP_ITEMS = 20_000
_UPDATES = {
    OPTYPE.CONCAT: index_mapping.update_concat_index_mapping,
    OPTYPE.SPLIT: index_mapping.update_split_index_mapping,
    OPTYPE.RESHAPE: index_mapping.update_reshape_index_mapping,
    OPTYPE.UNBIND: index_mapping.update_unbind_index_mapping,
    OPTYPE.EXPAND: index_mapping.update_expand_index_mapping,
    OPTYPE.SLICE: index_mapping.update_slice_index_mapping,
}


Widths = dict[Any, tuple[int, list[int]]]  # concatenation's autograd node -> (dim, input widths)


class RunawayGroup(Exception):
    """A group kept growing past :data:`MAX_GROUP_ITEMS` items."""


class _RecordShapes(TorchFunctionMode):
    """Remembers, for each concatenation's autograd node, the dimension and the input widths, and
    for every other op's, its first input's shape and its output's."""

    def __init__(self) -> None:
        super().__init__()
        self.widths: Widths = {}
        self.shapes: dict[Any, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not isinstance(out, torch.Tensor) or out.grad_fn is None:
            return out
        if func in CAT_FUNCTIONS:
            tensors = args[0] if args else kwargs.get("tensors", ())
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            dim = dim % out.ndim if out.ndim else 0
            self.widths[out.grad_fn] = (dim, [int(t.shape[dim]) for t in tensors])
        elif args and isinstance(args[0], torch.Tensor):
            self.shapes[out.grad_fn] = (tuple(args[0].shape), tuple(out.shape))
        return out


@dataclass
class TracedGraph:
    """The dependency graph and its barriers (node -> why channels cannot be followed there)."""

    dependency_graph: Any
    barriers: dict[Any, str] = field(default_factory=dict)

    def barrier_modules(self) -> dict[nn.Module, str]:
        return {node.module: reason for node, reason in self.barriers.items()}


def trace(model: nn.Module, input_size: Sequence[int]) -> TracedGraph:
    """Build the graph of ``model`` on one random input; raises only if tracing itself fails
    (the model does not run, or autograd cannot follow it)."""
    graph = tp.DependencyGraph()
    recorder = _RecordShapes()
    try:
        with torch.enable_grad(), recorder:  # tracing needs autograd, even inside no_grad()
            example = torch.randn(1, *input_size, device=model_device(model))
            graph.build_dependency(model, example, verbose=False)
    except Exception:
        if not hasattr(graph, "module2node"):
            raise  # the trace itself failed, not the index mapping after it
    traced = TracedGraph(graph)
    _set_concatenation_widths(traced, recorder.widths)
    _mark_channel_cuts(traced, recorder.shapes)
    _update_index_mapping(traced)
    for node in traced.barriers:
        node.dependencies = []  # channels are not followed through a barrier
    graph._secateurs_mapping = _Mapping(graph, set(traced.barriers))
    return traced


def _set_concatenation_widths(traced: TracedGraph, widths: Widths) -> None:
    for node in traced.dependency_graph.module2node.values():
        if node.type != OPTYPE.CONCAT:
            continue
        dim, sizes = widths.get(node.grad_fn, (None, []))
        if dim is None or len(sizes) != len(node.inputs):
            traced.barriers[node] = "a concatenation whose inputs the graph cannot match"
        elif dim == 1:
            node.module.concat_sizes = list(sizes)
            node.module.offsets = None  # set again by the index mapping


def _channel_dim(node: Any) -> bool:
    """Whether a split or slice node cuts the channel dimension (unknown: assume it does)."""
    grad_fn = node.grad_fn
    dim = getattr(grad_fn, "_saved_dim", None)
    sizes = getattr(grad_fn, "_saved_self_sym_sizes", None)
    if dim is None or sizes is None or not 0 <= dim < len(sizes):
        return True
    channel = 2 if len(sizes) == 3 else 1  # (N, tokens, C) or (N, C, ...)
    return dim == channel


def _regroups_channels(shapes: tuple[tuple[int, ...], tuple[int, ...]] | None) -> bool:
    """A reshape that keeps feature maps but changes the channel dimension ((N, C, H, W) to
    (N, groups, C / groups, H, W): split attention, channel shuffle). Flattening to (N, features)
    is followed by the graph."""
    if shapes is None:
        return False
    before, after = shapes
    return len(before) >= 3 and len(after) >= 3 and before[1] != after[1]


def _mark_channel_cuts(traced: TracedGraph, shapes: dict[Any, Any]) -> None:
    for node in traced.dependency_graph.module2node.values():
        if node.type == OPTYPE.SPLIT and _channel_dim(node):
            traced.barriers[node] = "a channel split (torch.split/chunk) cuts at fixed widths"
        elif node.type == OPTYPE.SLICE and _channel_dim(node):
            traced.barriers[node] = "a channel slice (x[:, a:b]) cuts at fixed positions"
        elif node.type == OPTYPE.RESHAPE and _regroups_channels(shapes.get(node.grad_fn)):
            traced.barriers[node] = "a reshape regroups the channels (x.view(N, G, C / G, ...))"


def _update_index_mapping(traced: TracedGraph) -> None:
    """Torch-Pruning's index mapping, node by node: a node whose mapping fails is a barrier, and
    is taken out of the later updates (every group built runs them again)."""
    for node in traced.dependency_graph.module2node.values():
        update = _UPDATES.get(node.type)
        if update is None or node in traced.barriers:
            continue
        try:
            update(traced.dependency_graph, node)
        except Exception as error:  # Torch-Pruning's inference fails on shapes it did not expect
            traced.barriers[node] = (
                f"the graph cannot map channels through a {node.type.name.lower()} "
                f"({type(error).__name__})"
            )
    unmappable = (OPTYPE.RESHAPE, OPTYPE.UNBIND, OPTYPE.EXPAND, OPTYPE.CONCAT)
    for node in traced.barriers:
        if node.type in unmappable and getattr(node.module, "concat_sizes", None) is None:
            node.type = OPTYPE.ELEMENTWISE  # nothing left to map: skipped by later updates


class _Mapping:
    """Torch-Pruning's ``update_index_mapping`` for one traced graph, skipping the barriers and
    the concatenations whose widths did not change since the last update (their mapping is a
    function of those widths alone)."""

    def __init__(self, graph: Any, barriers: set[Any]) -> None:
        self.barriers = barriers
        self.widths = {
            node: tuple(node.module.concat_sizes or ())
            for node in graph.module2node.values()
            if node.type == OPTYPE.CONCAT
        }

    def update_index_mapping(self, graph: Any) -> None:
        for node in graph.module2node.values():
            update = _UPDATES.get(node.type)
            if update is None or node in self.barriers:
                continue
            if node.type == OPTYPE.CONCAT:
                widths = tuple(node.module.concat_sizes or ())
                if self.widths.get(node) == widths:
                    continue
                self.widths[node] = widths
            update(graph, node)


@contextlib.contextmanager
def groups_of(graph: Any) -> Iterator[None]:
    """While active, Torch-Pruning builds the groups of ``graph`` (traced by :func:`trace`) with
    its incremental index mapping, and no group grows past :data:`MAX_GROUP_ITEMS` items."""
    mapping = getattr(graph, "_secateurs_mapping", None)
    with bounded_groups():
        if mapping is None:
            yield
            return
        tp_graph.index_mapping = mapping
        try:
            yield
        finally:
            tp_graph.index_mapping = index_mapping


@contextlib.contextmanager
def bounded_groups(limit: int | None = None) -> Iterator[None]:
    """While active, a group growing past ``limit`` (default :data:`MAX_GROUP_ITEMS`) items
    raises :class:`RunawayGroup`."""
    original, limit = tp_group.Group.add_dep, limit or MAX_GROUP_ITEMS

    def add_dep(self: Any, dep: Any, idxs: Any) -> None:
        if len(self._group) >= limit:
            raise RunawayGroup(f"a group grew past {limit} items")
        original(self, dep, idxs)

    tp_group.Group.add_dep = add_dep
    try:
        yield
    finally:
        tp_group.Group.add_dep = original
