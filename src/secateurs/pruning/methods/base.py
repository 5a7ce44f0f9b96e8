"""What a pruning method is, and the registry that finds methods by name.

A method scores channels: ``score(graph, data)`` returns, for every prunable group, one number per
channel (higher = more important). It may use only the weights, or the data it is handed (a few
batches). :meth:`PruningMethod.plan` turns a target into a :class:`MethodPlan`: it checks the data
and fills in the method's normalisation, then :meth:`PruningMethod._allocate` ranks the scores
with the engine's allocator. A method with its own allocation (PFP's eps budget, WSP's percentile
rule) overrides ``_allocate``; masks and surgery are never a method's business.
"""

from __future__ import annotations

import abc
import copy
import difflib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NamedTuple

import torch.nn.functional as F
from torch import Tensor

from secateurs.errors import SecateursError
from secateurs.measurement.cost import count_cost
from secateurs.pruning.allocation import Allocation, Allocator, Target, allocate_layer_ratios
from secateurs.pruning.channel_scores import THIN_WIDTH, describe_thin, thin_groups
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.surgery import remove_channels

log = logging.getLogger(__name__)


@dataclass
class ScoringData:
    """A few batches of (images, labels), already normalised, and the loss to differentiate."""

    batches: Sequence[tuple[Tensor, Tensor]] = ()
    loss: Callable[[Tensor, Tensor], Tensor] = field(default=F.cross_entropy)


@dataclass
class MethodPlan:
    """A method's answer to one target: the channels to remove and what it says about them."""

    plan: PruningPlan
    achieved: float  # cost ratio after / before (surgery on a copy), of the target's kind or MACs
    certificate: list[dict[str, Any]] = field(default_factory=list)  # per group; PFP gives one
    selection: str = "deterministic"  # how channels were chosen: "deterministic" or "randomized"
    round_to: int | None = None  # the multiple the allocator settled on (None: its own way)


class PlanRequest(NamedTuple):
    """What :meth:`PruningMethod._allocate` is asked: the graph, the scoring data (already
    checked), the target (a cost :class:`Target` or per-group ratios) and the allocation (the
    method's normalisation filled in)."""

    graph: ChannelGraph
    data: ScoringData
    target: Target | Mapping[str, float]
    allocation: Allocation


class PruningMethod(abc.ABC):
    """Base class: constructors store hyperparameters only; :meth:`score` does the work."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_data: ClassVar[bool] = False  # as listed; an instance may not (see :meth:`uses_data`)
    normalize: ClassVar[str] = "none"  # per-group normalisation used by global ranking

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @abc.abstractmethod
    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        """The importance of every channel of every prunable group: ``{group root: scores}``, one
        finite number per channel of the group, in the group's channel order; higher = more
        important (the lowest go first). A method that :meth:`uses_data` is handed at least one
        batch when called through :meth:`plan`; the model is left as it was found."""

    def uses_data(self) -> bool:
        """Whether this instance, with its hyperparameters, needs scoring batches."""
        return self.needs_data

    def plan(
        self,
        graph: ChannelGraph,
        data: ScoringData | None,
        target: Target | Mapping[str, float],
        allocation: Allocation,
    ) -> MethodPlan:
        """The plan meeting ``target``: a cost :class:`Target`, or a fraction of channels to
        remove per group root (``{root: ratio}``, the lowest-scoring channels of each group)."""
        data = data or ScoringData()
        if self.uses_data() and not data.batches:
            raise SecateursError(f"method {self.name!r} needs data: pass --data")
        if allocation.normalize is None:
            allocation = replace(allocation, normalize=self.normalize)
        result = self._allocate(PlanRequest(graph, data, target, allocation))
        thin = thin_groups(graph, result.plan)
        if thin:
            log.warning(
                "%s leaves %d group(s) under %d%% of their channels: %s. A one-shot ranking can "
                "collapse a layer; the channel floor (--min-fraction, --min-channels) prevents it",
                self.name,
                len(thin),
                round(100 * THIN_WIDTH),
                describe_thin(thin),
            )
        return result

    def _allocate(self, request: PlanRequest) -> MethodPlan:
        """The engine's allocation over :meth:`score` (``data`` checked, normalisation set)."""
        graph, data, target, allocation = request
        scores = self.score(graph, data)
        if isinstance(target, Target):
            allocator = Allocator(graph, scores, allocation)
            plan, achieved = allocator.meet(target)
            return MethodPlan(plan, achieved, round_to=allocator.settings.round_to)
        plan = allocate_layer_ratios(graph, scores, target, allocation)
        return MethodPlan(plan, measured_ratio(graph, plan))

    def params(self) -> dict[str, Any]:
        """Hyperparameters, for the run record."""
        return {key: value for key, value in vars(self).items() if not key.endswith("_")}


def measured_ratio(graph: ChannelGraph, plan: PruningPlan, kind: str = "macs") -> float:
    """The cost ratio after / before ``plan`` that real surgery on a copy of the model gives."""
    model = copy.deepcopy(graph.model)
    remove_channels(ChannelGraph(model, graph.input_size), plan)
    after = count_cost(model, graph.input_size)[kind]
    return after / count_cost(graph.model, graph.input_size)[kind]


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
