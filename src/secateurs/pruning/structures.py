"""Which channel groups are kept whole, and why.

A group is *protected* (never pruned) when pruning it would not be exact or the dependency graph
is wrong about it. Two kinds:

- by design: it produces the model's output, it has a single channel, or a layer in it computes
  with the channels in a way removal cannot reproduce (a normalisation across channels, a
  BatchNorm without affine parameters);
- by structure (``structural``): the graph cannot follow its channels: a channel split, a channel
  slice or an unmatched concatenation (a barrier, :mod:`.tracing`), a grouped convolution that is
  not depthwise, an index beyond a layer's width, a layer holding only part of the group (a
  plan could empty it), or a group that could not be built at all.
  These are listed in the pruning record, so a user sees what was left whole and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from secateurs.pruning.graph import ChannelGroup, Member

# normalisations whose output for one channel depends on the others: removing a channel that was
# zeroed changes the rest, so masked and pruned models would differ
CHANNEL_MIXING_NORMS = (nn.LayerNorm, nn.GroupNorm)


@dataclass
class Protection:
    reason: str
    structural: bool = False  # the graph cannot follow the structure (listed in the record)


def is_grouped_not_depthwise(module: nn.Module) -> bool:
    """A grouped convolution other than a depthwise one (one input and one output channel per
    group); 16 -> 8 channels in 8 groups is grouped, not depthwise."""
    return (
        isinstance(module, nn.modules.conv._ConvNd)
        and module.groups > 1
        and not module.groups == module.in_channels == module.out_channels
    )


def channel_width(module: nn.Module, direction: str) -> int | None:
    """Channels of ``module`` on its ``"out"`` or ``"in"`` side (None: not a layer with any)."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels if direction == "out" else module.in_channels
    if isinstance(module, nn.Linear):
        return module.out_features if direction == "out" else module.in_features
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.num_features
    return None


def _layer_protection(name: str, module: nn.Module) -> Protection | None:
    if isinstance(module, CHANNEL_MIXING_NORMS):
        return Protection(
            f"{name} ({type(module).__name__}) normalises across channels, so removing a "
            "channel changes the others"
        )
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.affine:
        return Protection(
            f"{name} is a BatchNorm without affine parameters: a masked channel would leave it "
            "-mean/std, not zero, so the masked and pruned models differ"
        )
    if is_grouped_not_depthwise(module):
        return Protection(
            f"{name} is a grouped convolution (groups={module.groups}) that is not depthwise; "
            "its channels are kept",
            structural=True,
        )
    return None


def _index_protection(member: Member, size: int) -> Protection | None:
    width = channel_width(member.module, member.direction)
    indices, roots = member.indices, member.root_indices
    outside = [i for i in indices if width is not None and i >= width]
    if outside or len(indices) != len(roots) or any(r >= size for r in roots):
        return Protection(
            f"the dependency graph maps channel {max(indices, default=0)} onto "
            f"{member.name} ({width} channels): a split and concatenation it misreads",
            structural=True,
        )
    return None


def _part_protection(member: Member, size: int) -> Protection | None:
    """A layer whose every output channel is in the group but stands for only part of the group's
    channels (a concatenation read by a depthwise layer): a plan keeping some of the group could
    still empty it."""
    width = channel_width(member.module, member.direction)
    whole = width is not None and len(set(member.indices)) == width
    if member.direction == "out" and whole and len(set(member.root_indices)) < size:
        return Protection(
            f"{member.name} holds {width} of the group's {size} channels (joined by a "
            "concatenation): removing them all would empty it",
            structural=True,
        )
    return None


def protection(
    group: ChannelGroup,
    output_layers: Iterable[nn.Module],
    barriers_reached: Mapping[str, str],
    failed_roots: Iterable[nn.Module] = (),
) -> Protection | None:
    """Why ``group`` (a :class:`~.graph.ChannelGroup`) must stay whole, or None.

    ``barriers_reached``: {where: why} of the barriers the group's channels reach;
    ``failed_roots``: layers whose own group could not be built."""
    outputs, failed = set(output_layers), set(failed_roots)
    members = group.members
    for member in members:
        if member.direction == "out" and member.module in outputs:
            return Protection(f"{member.name} produces the model's output")
    for member in members:
        found = _layer_protection(member.name, member.module)
        if found:
            return found
    for where, why in barriers_reached.items():
        return Protection(f"{why} ({where}); the graph cannot follow channels through it", True)
    for member in members:
        if member.direction == "out" and member.module in failed:
            return Protection(f"the group of {member.name} could not be built", structural=True)
        found = _index_protection(member, group.size) or _part_protection(member, group.size)
        if found:
            return found
    if group.size <= 1:
        return Protection(f"{group.root} has a single channel")
    return None
