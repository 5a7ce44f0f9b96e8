"""What a training-time pruning method is, and the registry that finds one by name.

A one-shot method scores channels of a trained model (:mod:`secateurs.pruning.methods`). A
training-time method prunes *while* the model trains: it is a trainer callback that masks
weights as training goes, and a compaction that turns the trained, masked model into the
smaller model it stands for, with the cost the method counts.

A method is one class and one decorator, as a one-shot method is: :func:`register_training_time`
makes it findable by ``name``; its ``Options`` dataclass declares its own options once
(:func:`secateurs.options.option` fields), which become the flags of its command
(``secateurs NAME``), the keyword arguments of ``secateurs.prune_while_training(method=NAME)``,
entries of the run's config.json and their checks. The run (``runs/training_time_run.py``)
supplies what every training-time method shares (:class:`TrainingRun`: the input size, the
epochs, the MACs target, the seed) and builds the method with :meth:`TrainingTimeMethod.build`.
docs/architecture.md adds one as a worked example.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from secateurs.errors import SecateursError
from secateurs.measurement.latency import LatencySettings
from secateurs.pruning.record import ManifestPruning
from secateurs.report import PruningRecord
from secateurs.train.callback import Callback

if TYPE_CHECKING:
    from secateurs.data import LabelledData


@dataclass(frozen=True)
class TrainingRun:
    """What the run tells every training-time method: the model's input size (C, H, W), the
    run's epochs (pruning included), its MACs target and its seed."""

    input_size: tuple[int, ...]
    epochs: int
    target_macs: float
    seed: int = 0


@dataclass(frozen=True)
class LatencyRequest:
    """A method's request for a latency source (a latency target): the backend and batch size to
    time in, and the table cache (None: the default directory). The run builds the source (the
    run's --threads and --latency-repeats) and hands it to :meth:`TrainingTimeMethod.use_latency`:
    the engine never imports ``secateurs.latency``."""

    backend: str
    batch: int
    cache: Path | None = None


@dataclass
class NoOptions:
    """A method without options of its own."""


@dataclass
class Compaction:
    """What compaction did: the Torch-Pruning history of the channels removed physically, the
    manifest's extra record (how to rebuild compact layers), per-layer choices, and the cost
    as the method counts it (None: count the compacted model)."""

    history: list[list[Any]]
    record: dict[str, Any] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    macs: int | None = None
    params: int | None = None


class TrainingTimeMethod(ABC):
    """A pruning method that runs inside training: :meth:`callback` for the trainer, then
    :meth:`compact` on the trained model. Subclasses set ``name``, ``title``, ``summary``,
    ``usage`` (the command line that runs it, for ``secateurs methods``), ``description`` (its
    command's ``--help`` text, with examples) and ``Options``, and implement :meth:`build`."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # the method's name as its paper writes it ("SG-CNN")
    summary: ClassVar[str] = ""
    usage: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    @classmethod
    @abstractmethod
    def build(cls, options: Any, run: TrainingRun) -> TrainingTimeMethod:
        """The method ``options`` (an ``Options`` instance) describe, for ``run``; a
        combination of options the method cannot run is a :class:`SecateursError` here, before
        any training."""

    def prepare(self, model: nn.Module, data: LabelledData) -> None:
        """Settle what needs the model and data before training (e.g. SPP's sensitivity scan).
        Most methods need nothing."""
        return None

    def latency_request(self) -> LatencyRequest | None:
        """The latency source the method needs, if any (most methods: None)."""
        return None

    def use_latency(self, latency: Any) -> None:
        """Take the latency source the run built for :meth:`latency_request` (before training;
        for gradual Taylor a ``GradualLatencyTargets``)."""
        raise SecateursError(f"{self.name} takes no latency source")

    def recipe_settings(self) -> dict[str, Any]:
        """Training settings of the method's own over the inherited recipe (e.g. schedule)."""
        return {}

    @abstractmethod
    def callback(self) -> Callback:
        """The trainer callback that masks the model as it trains (one per run; its state is
        checkpointed with the run)."""

    @abstractmethod
    def compact(
        self, model: nn.Module, input_size: Sequence[int], timing: LatencySettings
    ) -> Compaction:
        """Turn the trained, masked ``model`` into its compact form in place; ``timing``
        decides between forms that compute the same where the method measures them."""

    @abstractmethod
    def pruning_record(self, compaction: Compaction) -> PruningRecord:
        """The report's record of what was pruned and how (after :meth:`compact`)."""

    @abstractmethod
    def manifest_record(
        self, previous: ManifestPruning | None, compaction: Compaction
    ) -> ManifestPruning:
        """The manifest's ``pruning`` entry: what to replay on the base architecture to rebuild
        the compact model (``previous``: the entry of the model the run started from)."""

    def write_files(self, out: Path) -> dict[str, Any]:
        """Files of the method's own beside the model in ``out`` (after :meth:`compact`);
        returns what was written, for the report. Most methods write none."""
        return {}


_REGISTRY: dict[str, type[TrainingTimeMethod]] = {}
# the built-in methods' modules, imported (so registered) the first time the registry is read
BUILT_IN = (
    "secateurs.pruning.spp.method",
    "secateurs.pruning.sgcnn.method",
    "secateurs.pruning.campfire.method",
    "secateurs.pruning.taylor_gradual_method",
)
BUILT_IN_NAMES = ("spp", "sgcnn", "campfire", "taylor-gradual")


def register_training_time(cls: type[TrainingTimeMethod]) -> type[TrainingTimeMethod]:
    """Class decorator: make the training-time method ``cls`` findable by its ``name``."""
    if not cls.name or (cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls):
        raise ValueError(f"training-time method name {cls.name!r} is empty or taken")
    if not hasattr(cls.Options, "__dataclass_fields__"):
        raise TypeError(f"{cls.__name__}.Options must be a dataclass of declared options")
    _REGISTRY[cls.name] = cls
    return cls


def _load_built_in() -> None:
    import importlib

    for module in BUILT_IN:
        importlib.import_module(module)


def training_time_methods() -> list[str]:
    """The registered training-time methods' names, built-in first, then in registration order."""
    _load_built_in()
    return list(_REGISTRY)


def training_time_method(name: str) -> type[TrainingTimeMethod]:
    """The training-time method called ``name``; an unknown name is a one-line error."""
    _load_built_in()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SecateursError(
            f"training-time methods are {', '.join(_REGISTRY)}, not {name!r}{hint}"
        )
    return _REGISTRY[name]


def unregister_training_time(name: str) -> None:
    """Forget the method called ``name`` (a test's own, registered for the test)."""
    if name in BUILT_IN_NAMES:
        raise ValueError(f"{name!r} is built in")
    _REGISTRY.pop(name, None)
