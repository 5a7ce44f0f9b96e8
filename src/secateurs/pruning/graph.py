"""Coupled channel groups of a model, from Torch-Pruning's dependency graph, with its footguns
guarded.

A *channel group* is a set of channels that must be removed together: the output channels of a
convolution, its BatchNorm, every layer that reads them, and, across a residual addition or a
concatenation, the channels of every other layer tied to them. A group is named by its *root*:
the first layer whose output channels it holds; channel ``i`` of a group is channel ``i`` of the
root layer (Torch-Pruning's ``root_idxs``).

Guards over plain Torch-Pruning: the graph is traced with autograd on even inside
``torch.no_grad()``, never raises from inside once the model has run, and never grows a group
without bound (:mod:`.tracing`); the model's output layers are found and never pruned; groups
whose removal is not exact or that the graph cannot follow are kept whole with the reason
(:mod:`.structures`).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch_pruning as tp
from torch import nn

from secateurs.errors import SecateursError, first_line
from secateurs.pruning import tracing
from secateurs.pruning.structures import protection

OUT, IN = "out", "in"
ROOT_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


@dataclass
class Member:
    """One layer's share of a group: which of its (``OUT`` or ``IN``) channels belong to it."""

    name: str
    module: nn.Module
    direction: str
    indices: list[int]  # channel indices in this layer
    root_indices: list[int]  # the group channel each of ``indices`` belongs to


@dataclass
class ChannelGroup:
    root: str  # name of the root layer
    size: int  # channels in the group
    members: list[Member]
    prunable: bool = True
    reason: str = ""  # why it is not prunable
    structural: bool = False  # kept whole because the graph cannot follow its structure
    _root_module: nn.Module | None = field(default=None, repr=False)
    end: str = ""  # "stem" or "classifier input" (held to a higher floor), else ""

    def layers(self, direction: str, types: tuple[type, ...] = (nn.Module,)) -> list[Member]:
        return [m for m in self.members if m.direction == direction and isinstance(m.module, types)]


# layers whose channels the engine cannot follow (they compute with functional calls, which
# Torch-Pruning does not trace as layers), by class name (no import: the engine knows no method):
# what they are, and what to do instead
_REFUSED_LAYERS = {
    "CompactConv2d": (
        "a compact column convolution (SPP)",
        "prune the masked model (the SPP run's masked/) instead",
    ),
    "DiverseGroupConv2d": (
        "a diverse group convolution (SG-CNN)",
        "prune channels before grouping, or prune the masked model instead",
    ),
}


class ChannelGraph:
    """The channel groups of ``model`` traced on one input of ``input_size`` (C, H, W)."""

    def __init__(self, model: nn.Module, input_size: Sequence[int]) -> None:
        self.model = model
        self.input_size = tuple(input_size)
        self.names = {module: name for name, module in model.named_modules()}
        for module, name in self.names.items():
            refusal = _REFUSED_LAYERS.get(type(module).__name__)
            if refusal:
                raise SecateursError(
                    f"{name} is {refusal[0]}: the engine cannot prune through it; {refusal[1]}"
                )
        was_training = model.training
        try:
            traced = tracing.trace(model, self.input_size)
        except Exception as error:  # the model did not run, or autograd could not follow it
            where = traceback.extract_tb(error.__traceback__)[-1].name
            raise SecateursError(
                f"cannot trace {type(model).__name__} for pruning: Torch-Pruning's dependency "
                f"graph failed in {where} ({type(error).__name__}: {first_line(error)})"
            ) from None
        finally:
            model.train(was_training)
        self.dependency_graph = traced.dependency_graph
        self.barriers = traced.barriers
        self.output_layers = self._find_output_layers()
        self.groups = self._collect_groups()
        self._mark_ends()

    # -- construction --------------------------------------------------------------------------
    def _find_output_layers(self) -> set[nn.Module]:
        """Layers whose output channels are the model's outputs: nothing reads them, or only the
        traced output does."""
        found = set()
        for module, node in self.dependency_graph.module2node.items():
            if not isinstance(module, (nn.Conv2d, nn.Linear, nn.Conv1d, nn.Conv3d)):
                continue
            if _feeds_output_only_through_reshapes(node):
                found.add(module)
        return found

    def _roots(self) -> Iterator[nn.Module]:
        """Layers that root a group, in the graph's order (as Torch-Pruning's get_all_groups)."""
        graph = self.dependency_graph
        for module in list(graph.module2node):
            if isinstance(module, ROOT_TYPES) and module in self.names:
                pruner = graph.get_pruner_of_module(module)
                if pruner is not None and pruner.get_out_channels(module) is not None:
                    yield module

    def _collect_groups(self) -> list[ChannelGroup]:
        """Every root's group, each built on its own: a group that cannot be built (an error
        inside the graph, a runaway) is kept whole, the others are built as usual."""
        graph, groups, visited, failed = self.dependency_graph, [], set(), {}
        for root in self._roots():
            if root in visited:
                continue
            width = graph.get_pruner_of_module(root).get_out_channels(root)
            try:
                tp_group = self.torch_pruning_group_of(root, range(width))
            except Exception as error:  # Torch-Pruning's IndexError, or a runaway group
                failed[root] = f"{type(error).__name__}: {first_line(error)}"
                groups.append(self._unbuilt_group(root, width, failed[root]))
                continue
            group, reached = self._group_from(tp_group)
            visited.update(m.module for m in group.members if m.direction == OUT)
            found = protection(group, self.output_layers, reached, failed)
            if found:
                group.prunable, group.reason, group.structural = (
                    False,
                    found.reason,
                    found.structural,
                )
            groups.append(group)
        order = {name: position for position, name in enumerate(self.names.values())}
        return sorted(groups, key=lambda group: order[group.root])

    def _group_from(self, tp_group) -> tuple[ChannelGroup, dict[str, str]]:
        """Our group of Torch-Pruning's, and the barriers its channels reach."""
        graph, members, reached = self.dependency_graph, [], {}
        for item in tp_group:
            node = item.dep.target
            if node in self.barriers:
                reached[self._near(node)] = self.barriers[node]
            module = node.module
            if not isinstance(module, nn.Module) or module not in self.names:
                continue  # Torch-Pruning's own placeholder ops (add, concat, reshape)
            direction = OUT if graph.is_out_channel_pruning_fn(item.dep.handler) else IN
            members.append(
                Member(self.names[module], module, direction, list(item.idxs), list(item.root_idxs))
            )
        root = tp_group[0].dep.target.module
        size = len(tp_group[0].idxs)
        return ChannelGroup(self.names[root], size, members, _root_module=root), reached

    def _mark_ends(self) -> None:
        """``end`` of the prunable group holding the first convolution's output channels
        ("stem") and of the one the final linear layer reads ("classifier input")."""
        convolutions = [m for m in self.names if isinstance(m, nn.modules.conv._ConvNd)]
        linears = [m for m in self.names if isinstance(m, nn.Linear)]
        outputs = [m for m in linears if m in self.output_layers] or linears[-1:]
        for group in self.prunable_groups:
            members = {(m.module, m.direction) for m in group.members}
            if convolutions and (convolutions[0], OUT) in members:
                group.end = "stem"
            elif any((linear, IN) in members for linear in outputs):
                group.end = "classifier input"

    def _unbuilt_group(self, root: nn.Module, width: int, error: str) -> ChannelGroup:
        indices = list(range(width))
        member = Member(self.names[root], root, OUT, indices, indices)
        reason = f"the dependency graph could not follow its channels ({error})"
        return ChannelGroup(self.names[root], width, [member], False, reason, True, root)

    def _near(self, node) -> str:
        """The named layer closest upstream of a graph node (a barrier has no name of its own)."""
        frontier, seen = [node], set()
        while frontier:
            current = frontier.pop(0)
            if current in seen:
                continue
            seen.add(current)
            if current.module in self.names:
                return f"after {self.names[current.module]}"
            frontier += current.inputs
        return "at the model's input"

    # -- queries --------------------------------------------------------------------------------
    @property
    def prunable_groups(self) -> list[ChannelGroup]:
        return [group for group in self.groups if group.prunable]

    def group(self, root: str) -> ChannelGroup:
        for group in self.groups:
            if group.root == root:
                return group
        raise SecateursError(f"no channel group is rooted at layer {root!r}")

    def module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)

    def torch_pruning_group(self, group: ChannelGroup, indices: Sequence[int]):
        """Torch-Pruning's group removing ``indices`` (group numbering) of ``group``."""
        return self.torch_pruning_group_of(self.model.get_submodule(group.root), indices)

    def torch_pruning_group_of(self, root: nn.Module, indices: Sequence[int]):
        graph = self.dependency_graph
        pruner = graph.get_pruner_of_module(root)
        with tracing.groups_of(graph):
            return graph.get_pruning_group(root, pruner.prune_out_channels, list(indices))


def _feeds_output_only_through_reshapes(node) -> bool:
    """True when the node's channels reach the model output with no layer in between that takes
    them as input channels (only flatten/view/pooling-like element-wise steps)."""
    stack, seen = [node], set()
    reaches_output = False
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if not current.outputs:
            reaches_output = True
            continue
        for child in current.outputs:
            kind = child.type
            if kind == tp.ops.OPTYPE.OUTPUT:
                reaches_output = True
            elif kind in (tp.ops.OPTYPE.RESHAPE, tp.ops.OPTYPE.ELEMENTWISE):
                stack.append(child)
            else:
                return False
    return reaches_output
