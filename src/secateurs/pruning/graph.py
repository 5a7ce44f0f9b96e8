"""Coupled channel groups of a model, from Torch-Pruning's dependency graph, with its footguns
guarded.

A *channel group* is a set of channels that must be removed together: the output channels of a
convolution, its BatchNorm, every layer that reads them, and, across a residual addition or a
concatenation, the channels of every other layer tied to them. A group is named by its *root*:
the first layer whose output channels it holds; channel ``i`` of a group is channel ``i`` of the
root layer (Torch-Pruning's ``root_idxs``).

Guards over plain Torch-Pruning: the graph is traced with autograd on even inside
``torch.no_grad()``; the model's output layers are found and never pruned; structures whose
removal is not exact or not supported (channel-mixing normalisation, grouped convolutions that are
not depthwise) are marked unprunable with the layer named.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from secateurs.errors import SecateursError

OUT, IN = "out", "in"
# normalisations whose output for one channel depends on the others: removing a channel that was
# zeroed changes the rest, so masked and pruned models would differ
CHANNEL_MIXING_NORMS = (nn.LayerNorm, nn.GroupNorm)


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
    _root_module: nn.Module | None = field(default=None, repr=False)

    def layers(self, direction: str, types: tuple[type, ...] = (nn.Module,)) -> list[Member]:
        return [m for m in self.members if m.direction == direction and isinstance(m.module, types)]


def _is_grouped_not_depthwise(module: nn.Module) -> bool:
    """A grouped convolution other than a depthwise one (one input and one output channel per
    group); 16 -> 8 channels in 8 groups is grouped, not depthwise."""
    return (
        isinstance(module, nn.modules.conv._ConvNd)
        and module.groups > 1
        and not module.groups == module.in_channels == module.out_channels
    )


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
            with torch.enable_grad():  # tracing needs autograd, even inside no_grad()
                self.dependency_graph = tp.DependencyGraph().build_dependency(
                    model, torch.randn(1, *self.input_size), verbose=False
                )
        except Exception as error:  # Torch-Pruning raises bare assertions and runtime errors
            where = traceback.extract_tb(error.__traceback__)[-1].name
            raise SecateursError(
                f"cannot trace {type(model).__name__} for pruning: Torch-Pruning's dependency "
                f"graph failed in {where} ({type(error).__name__}: {error})"
            ) from None
        finally:
            model.train(was_training)
        self.output_layers = self._find_output_layers()
        self.groups = self._collect_groups()

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

    def _collect_groups(self) -> list[ChannelGroup]:
        graph = self.dependency_graph
        groups = []
        for tp_group in graph.get_all_groups(
            root_module_types=(nn.modules.conv._ConvNd, nn.Linear)
        ):
            root_module = tp_group[0].dep.target.module
            members = []
            for item in tp_group:
                module = item.dep.target.module
                if not isinstance(module, nn.Module) or module not in self.names:
                    continue  # Torch-Pruning's own placeholder ops (add, concat, reshape)
                direction = OUT if graph.is_out_channel_pruning_fn(item.dep.handler) else IN
                members.append(
                    Member(
                        self.names[module],
                        module,
                        direction,
                        list(item.idxs),
                        list(item.root_idxs),
                    )
                )
            group = ChannelGroup(
                self.names[root_module], len(tp_group[0].idxs), members, _root_module=root_module
            )
            self._check_prunable(group)
            groups.append(group)
        order = {name: position for position, name in enumerate(self.names.values())}
        return sorted(groups, key=lambda group: order[group.root])

    def _check_prunable(self, group: ChannelGroup) -> None:
        for member in group.members:
            if member.direction == OUT and member.module in self.output_layers:
                group.prunable, group.reason = False, f"{member.name} produces the model's output"
                return
            if isinstance(member.module, CHANNEL_MIXING_NORMS):
                group.prunable = False
                group.reason = (
                    f"{member.name} ({type(member.module).__name__}) normalises across channels, "
                    "so removing a channel changes the others"
                )
                return
            if isinstance(member.module, nn.modules.batchnorm._BatchNorm) and not (
                member.module.affine
            ):
                group.prunable = False
                group.reason = (
                    f"{member.name} is a BatchNorm without affine parameters: a masked channel "
                    "would leave it -mean/std, not zero, so the masked and pruned models differ"
                )
                return
            if _is_grouped_not_depthwise(member.module):
                group.prunable = False
                group.reason = (
                    f"{member.name} is a grouped convolution (groups={member.module.groups}) "
                    "that is not depthwise; pruning its channels is not supported"
                )
                return
        if group.size <= 1:
            group.prunable, group.reason = False, f"{group.root} has a single channel"

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
        root = self.model.get_submodule(group.root)
        pruner = self.dependency_graph.get_pruner_of_module(root)
        return self.dependency_graph.get_pruning_group(
            root, pruner.prune_out_channels, list(indices)
        )


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
