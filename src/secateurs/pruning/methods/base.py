"""What a pruning method is, and the registry that finds methods by name.

A method scores channels: ``score(graph, data)`` returns, for every prunable group, one number per
channel (higher = more important). It may use only the weights, or the data it is handed (a few
batches). Allocation, masks and surgery are not its business; a method that needs its own
allocation overrides :meth:`PruningMethod.plan`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.pruning.allocation import Allocation, Allocator, Target
from secateurs.pruning.graph import ChannelGraph, ChannelGroup, Member
from secateurs.pruning.plan import PruningPlan


@dataclass
class ScoringData:
    """A few batches of (images, labels), already normalised, and the loss to differentiate."""

    batches: Sequence[tuple[Tensor, Tensor]] = ()
    loss: Callable[[Tensor, Tensor], Tensor] = field(default=F.cross_entropy)


class PruningMethod:
    """Base class: constructors store hyperparameters only; :meth:`score` does the work."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_data: ClassVar[bool] = False
    normalize: ClassVar[str] = "none"  # per-group normalisation used by global ranking

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        raise NotImplementedError

    def plan(
        self,
        graph: ChannelGraph,
        data: ScoringData | None,
        target: Target,
        allocation: Allocation,
    ) -> tuple[PruningPlan, float]:
        """The plan meeting ``target``; returns it and the achieved ratio."""
        data = data or ScoringData()
        if self.needs_data and not data.batches:
            raise SecateursError(f"method {self.name!r} needs data: pass --data")
        if allocation.normalize is None:
            allocation = replace(allocation, normalize=self.normalize)
        return Allocator(graph, self.score(graph, data), allocation).meet(target)

    def params(self) -> dict[str, Any]:
        """Hyperparameters, for the run record."""
        return {key: value for key, value in vars(self).items() if not key.endswith("_")}


def scatter(group: ChannelGroup, member: Member, per_channel: Tensor) -> Tensor:
    """Values given per channel of ``member``'s layer, summed onto the group's channels."""
    out = torch.zeros(group.size, dtype=torch.float64)
    index = torch.tensor(member.indices, dtype=torch.long)
    root = torch.tensor(member.root_indices, dtype=torch.long)
    out.index_add_(0, root, per_channel.detach().double()[index])
    return out


def producing_layers(group: ChannelGroup) -> list[Member]:
    """Members whose output channels are the group's channels: convolutions and linear layers."""
    return group.layers("out", (nn.modules.conv._ConvNd, nn.Linear))


_METHODS: dict[str, type[PruningMethod]] = {}


def register_method(cls: type[PruningMethod]) -> type[PruningMethod]:
    """Class decorator: make ``cls`` findable by its ``name``."""
    if not cls.name or cls.name in _METHODS:
        raise ValueError(f"method name {cls.name!r} is empty or taken")
    _METHODS[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    return sorted(_METHODS)


def method_class(name: str) -> type[PruningMethod]:
    if name not in _METHODS:
        close = difflib.get_close_matches(name, list(_METHODS), n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SecateursError(f"unknown method {name!r}{hint} (`secateurs methods` lists them)")
    return _METHODS[name]


def create_method(name: str, **params: Any) -> PruningMethod:
    return method_class(name)(**params)
