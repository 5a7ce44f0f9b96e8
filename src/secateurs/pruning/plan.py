"""A pruning plan: which channels of which group go. Methods produce plans; masks and surgery
apply them. Plans are plain data (JSON) so that reports and saved models can carry them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from secateurs.errors import SecateursError
from secateurs.pruning.graph import ChannelGraph


@dataclass
class PruningPlan:
    """``removals[root]``: sorted channel indices (group numbering) to remove from that group."""

    removals: dict[str, list[int]] = field(default_factory=dict)

    def validate(self, graph: ChannelGraph) -> PruningPlan:
        """Check every group exists, is prunable, and keeps at least one channel."""
        for root, indices in self.removals.items():
            group = graph.group(root)
            if not indices:
                continue
            if not group.prunable:
                raise SecateursError(f"cannot prune group {root}: {group.reason}")
            if min(indices) < 0 or max(indices) >= group.size:
                raise SecateursError(
                    f"plan removes channel {max(indices)} of {root}, which has {group.size}"
                )
            if len(set(indices)) >= group.size:
                raise SecateursError(f"plan would empty layer {root} ({group.size} channels)")
        return self

    def kept(self, graph: ChannelGraph) -> dict[str, int]:
        """Channels each group keeps."""
        return {g.root: g.size - len(self.removals.get(g.root, [])) for g in graph.groups}

    @property
    def removed_count(self) -> int:
        return sum(len(indices) for indices in self.removals.values())

    def to_json(self) -> dict[str, Any]:
        return {root: list(map(int, idx)) for root, idx in self.removals.items() if idx}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PruningPlan:
        return cls({root: sorted(int(i) for i in idx) for root, idx in data.items()})
