"""Gradual Taylor as a training-time method: the callback (:class:`GradualTaylor` to a MACs
target, :class:`GradualTaylorLatency` to a latency target) and its compaction (the removed
channels taken out through the engine's surgery).

With ``--target-latency`` the method asks the run for a latency source
(:meth:`latency_request`); the run, which sits above both the engine and ``secateurs.latency``,
builds it and hands it in (:meth:`use_latency`) before training."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from secateurs.errors import SecateursError
from secateurs.measurement.backends import backend_names
from secateurs.measurement.latency import LatencySettings
from secateurs.options import count, fraction, option
from secateurs.pruning.channel_scores import THIN_WIDTH, describe_thin, thin_groups
from secateurs.pruning.floor import FloorOptions, floor_record
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.record import ChannelRounds, ManifestPruning, TaylorGradualRecord
from secateurs.pruning.surgery import remove_channels
from secateurs.pruning.taylor_gradual import (
    DEFAULT_INTERVAL,
    DEFAULT_MOMENTUM,
    GradualSchedule,
    GradualTaylor,
)
from secateurs.pruning.taylor_gradual_latency import (
    DEFAULT_PRUNE_UNTIL,
    DEFAULT_STEPS,
    GradualTaylorLatency,
    LatencySchedule,
)
from secateurs.pruning.training_time import (
    Compaction,
    LatencyRequest,
    TrainingRun,
    TrainingTimeMethod,
    register_training_time,
)
from secateurs.report import PruningRecord

log = logging.getLogger(__name__)

DESCRIPTION = """Train a saved model while pruning it with first-order Taylor scores as Molchanov
et al. (CVPR 2019) do: (gate x dL/dgate)^2 of a gate after each BatchNorm, averaged over
--interval iterations, divided by the number of layers sharing a channel, smoothed across steps
with --momentum; every --interval iterations the lowest channels go (--per-step), until the
MACs target; then training goes on with the smaller network. Slower than `secateurs prune
--method taylor`, which scores once and can leave a layer with one or two channels.

With --target-latency R (instead of --target-macs; after HALP, Shen et al. 2022) it prunes in
--steps steps over the first --prune-until of the run to a latency budget descending from the
dense latency to R x dense, least importance per millisecond saved first, only between widths
--backend runs efficiently; after the last step the model is timed against the dense one and
corrected to within 3% of R (docs/latency.md, "Gradual latency pruning").

examples:
  secateurs taylor-gradual runs/vgg/model --data ../shared/data/cifar10 --target-macs 0.25 \\
      --epochs 10 -o runs/vgg-taylor-gradual
  secateurs taylor-gradual runs/resnet20/model --data ../shared/data/cifar10 \\
      --target-latency 0.5 --backend onnxruntime --latency-batch 64 --epochs 10 -o runs/r20-lat
"""


@dataclass(kw_only=True)
class TaylorGradualOptions(FloorOptions):
    """Gradual Taylor's own options (the run's --target-macs, --epochs and --seed are shared)."""

    interval: int = count(DEFAULT_INTERVAL, "iterations between pruning steps")
    momentum: float = option(
        DEFAULT_MOMENTUM,
        help="smoothing of the scores across pruning steps",
        parse=float,
        check=lambda v: None if 0 <= v < 1 else f"must be in [0, 1), not {v}",
    )
    per_step: int | None = count(
        None,
        "channels removed per step (default: 0.5%% of the prunable channels, more if the "
        "run is too short to reach the target in its first half)",
    )
    target_latency: float | None = fraction(
        None,
        "keep this fraction of the unpruned model's latency measured in --backend at "
        "--latency-batch, instead of --target-macs (pruned in --steps steps, then measured)",
    )
    steps: int = count(DEFAULT_STEPS, "with --target-latency: pruning steps to the target")
    prune_until: float = fraction(
        DEFAULT_PRUNE_UNTIL, "with --target-latency: the share of the run the steps spread over"
    )
    backend: str = option(
        "onnxruntime",
        help="the runtime --target-latency measures in",
        choices=tuple(backend_names()),
    )
    latency_batch: int = count(1, "images per run when --target-latency times")
    latency_cache: Path | None = option(
        None,
        help="directory of the latency tables (default: ~/.cache/secateurs/latency)",
        parse=Path,
    )


@register_training_time
class GradualTaylorMethod(TrainingTimeMethod):
    """Taylor pruning on the paper's gradual schedule (Molchanov et al., CVPR 2019)."""

    name = "taylor-gradual"
    title = "gradual Taylor"
    summary = (
        "Taylor scores (BN gates) averaged over batches and smoothed with momentum while "
        "training, the lowest few channels removed every M iterations (Molchanov et al. 2019)"
    )
    usage = "secateurs taylor-gradual MODEL --data PATH (--target-macs R | --target-latency R)"
    description = DESCRIPTION
    Options = TaylorGradualOptions

    @classmethod
    def build(cls, options: TaylorGradualOptions, run: TrainingRun) -> GradualTaylorMethod:
        schedule = GradualSchedule(
            run.target_macs,
            options.interval,
            options.momentum,
            options.per_step,
            options.min_channels,
            options.min_fraction,
            options.ends_min_fraction,
        )
        method = cls(schedule, run.input_size, run.epochs)
        if options.target_latency is not None:
            if options.per_step is not None:
                raise SecateursError(
                    "--per-step sizes MACs steps; with --target-latency each step removes what "
                    "its latency budget asks (set --steps)"
                )
            method.use_latency_target(options)
        return method

    def __init__(self, schedule: GradualSchedule, input_size: Sequence[int], epochs: int) -> None:
        self.schedule = schedule
        self.epochs = epochs
        self._callback: GradualTaylor = GradualTaylor(schedule, input_size)
        self.latency_schedule: LatencySchedule | None = None
        self._request: LatencyRequest | None = None
        self._input_size = tuple(input_size)

    def use_latency_target(self, options: TaylorGradualOptions) -> None:
        """Prune to ``options.target_latency`` instead of the MACs target."""
        assert options.target_latency is not None
        self.latency_schedule = LatencySchedule(
            options.target_latency,
            options.steps,
            options.prune_until,
            options.momentum,
            options.min_channels,
            options.min_fraction,
            options.ends_min_fraction,
        )
        self._callback = GradualTaylorLatency(self.latency_schedule, self._input_size)
        self._request = LatencyRequest(
            options.backend, options.latency_batch, options.latency_cache
        )

    def latency_request(self) -> LatencyRequest | None:
        return self._request

    def use_latency(self, latency: Any) -> None:
        if not isinstance(self._callback, GradualTaylorLatency):
            raise SecateursError("gradual Taylor takes a latency source with --target-latency")
        self._callback.latency = latency

    def callback(self) -> GradualTaylor:
        return self._callback

    def compact(
        self, model: nn.Module, input_size: Sequence[int], timing: LatencySettings
    ) -> Compaction:
        """The removed channels taken out physically (the cost is counted on the result)."""
        plan = self._callback.plan()
        if not plan.removals:
            return Compaction([])
        graph = ChannelGraph(model, input_size)
        thin = thin_groups(graph, plan)
        if thin:
            log.warning(
                "gradual Taylor left %d group(s) under %d%% of their channels: %s "
                "(--min-fraction and --min-channels set the floor)",
                len(thin),
                round(100 * THIN_WIDTH),
                describe_thin(thin),
            )
        return Compaction(remove_channels(graph, plan))

    def _floor_record(self) -> dict[str, object]:
        """The floor the schedule kept to, per group of the model before pruning."""
        graph = self._callback.graph_
        return {} if graph is None else floor_record(graph, self.schedule.floor())

    def pruning_record(self, compaction: Compaction) -> PruningRecord:
        if not self._callback.over:
            log.warning(
                "gradual Taylor did not reach its target within %d epochs: compacted what it "
                "pruned (more epochs, or more channels per step)",
                self.epochs,
            )
        record = PruningRecord(
            method=self.name,
            target_ratio=self.schedule.target_macs,
            method_params={"interval": self.schedule.interval, "momentum": self.schedule.momentum},
            selection="gradual",
            granularity="channel",
            channels=self._callback.channel_counts(),
            details={"taylor_gradual": self._callback.record(), "floor": self._floor_record()},
        )
        if isinstance(self._callback, GradualTaylorLatency):
            assert self.latency_schedule is not None and self._request is not None
            record.target_kind, record.target_ratio = "latency", self.latency_schedule.target
            record.achieved_ratio = self._callback.measured_ratio or 1.0
            record.method_params = {
                "momentum": self.schedule.momentum,
                "steps": self.latency_schedule.steps,
                "prune_until": self.latency_schedule.prune_until,
            }
            record.details["latency_model"] = {
                "backend": self._request.backend,
                "batch": self._request.batch,
            }
        return record

    def manifest_record(
        self, previous: ManifestPruning | None, compaction: Compaction
    ) -> ManifestPruning:
        return ManifestPruning(
            method=self.name,
            rounds=ChannelRounds([compaction.history]),
            taylor_gradual=TaylorGradualRecord(self._callback.record()),
        ).after(previous)
