"""The pruning engine: channel groups (graph), plans, masks, surgery, allocation, methods."""

from secateurs.pruning.allocation import Allocation, Target
from secateurs.pruning.graph import ChannelGraph, ChannelGroup
from secateurs.pruning.masks import apply_masks
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.surgery import remove_channels

__all__ = [
    "Allocation",
    "ChannelGraph",
    "ChannelGroup",
    "PruningPlan",
    "Target",
    "apply_masks",
    "remove_channels",
]
