"""What a training-time pruning method is (SPP, SG-CNN, Campfire), and the registry
that lists them beside the one-shot methods.

A one-shot method scores channels of a trained model (:mod:`secateurs.pruning.methods`). A
training-time method prunes *while* the model trains: it is a trainer callback that masks
weights as training goes, and a compaction that turns the trained, masked model into the
smaller model it stands for, with the cost the method counts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from secateurs.measure.latency import LatencySettings
from secateurs.pruning.record import ManifestPruning
from secateurs.report import PruningRecord
from secateurs.train.callback import Callback


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
    :meth:`compact` on the trained model."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    command: ClassVar[str] = ""  # the secateurs command that runs it

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


TRAINING_TIME_METHODS: dict[str, tuple[str, str]] = {
    # name: (summary, command); the classes live beside their methods
    "spp": (
        "Monte Carlo masks of columns, input channels or channels from rank-based "
        "probabilities during training, then compaction (Wang et al. 2018)",
        "secateurs spp MODEL --data PATH --granularity column|input_channel|channel "
        "--target-macs R",
    ),
    "sgcnn": (
        "filters clustered by the input channels they read (k-means); each group keeps its "
        "own inputs; the layer becomes a diverse group convolution (Guo et al. 2020)",
        "secateurs sgcnn MODEL --data PATH --target-macs R --groups G --scheme L|LG|G",
    ),
    "taylor-gradual": (
        "Taylor scores (BN gates) averaged over batches and smoothed with momentum while "
        "training, the lowest few channels removed every M iterations (Molchanov et al. 2019)",
        "secateurs taylor-gradual MODEL --data PATH --target-macs R",
    ),
    "campfire": (
        "gradual magnitude sparsity inside kernels (window), per filter (kernel) or of whole "
        "filters on the AGP ramp, masks frozen after a set epoch (Gamboa et al. 2020)",
        "secateurs campfire MODEL --data PATH --granularity window|kernel|filter --target-macs R",
    ),
}
