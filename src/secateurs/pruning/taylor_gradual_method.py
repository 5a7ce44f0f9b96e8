"""Gradual Taylor as a training-time method: the callback (:class:`GradualTaylor`) and its
compaction (the removed channels taken out through the engine's surgery)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from torch import nn

from secateurs.measure.latency import LatencySettings
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods.base import THIN_WIDTH, describe_thin, thin_groups
from secateurs.pruning.record import ChannelRounds, ManifestPruning, TaylorGradualRecord
from secateurs.pruning.surgery import remove_channels
from secateurs.pruning.taylor_gradual import GradualSchedule, GradualTaylor
from secateurs.pruning.training_time import TRAINING_TIME_METHODS, Compaction, TrainingTimeMethod
from secateurs.report import PruningRecord

log = logging.getLogger(__name__)


class GradualTaylorMethod(TrainingTimeMethod):
    """Taylor pruning on the paper's gradual schedule (Molchanov et al., CVPR 2019)."""

    name = "taylor-gradual"
    summary, command = TRAINING_TIME_METHODS["taylor-gradual"]

    def __init__(self, schedule: GradualSchedule, input_size: Sequence[int], epochs: int) -> None:
        self.schedule = schedule
        self.epochs = epochs
        self._callback = GradualTaylor(schedule, input_size)

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
                "(--min-channels sets a floor)",
                len(thin),
                round(100 * THIN_WIDTH),
                describe_thin(thin),
            )
        return Compaction(remove_channels(graph, plan))

    def pruning_record(self, compaction: Compaction) -> PruningRecord:
        if not self._callback.over:
            log.warning(
                "gradual Taylor did not reach its target within %d epochs: compacted what it "
                "pruned (more epochs, or more channels per step)",
                self.epochs,
            )
        return PruningRecord(
            method=self.name,
            target_ratio=self.schedule.target_macs,
            method_params={"interval": self.schedule.interval, "momentum": self.schedule.momentum},
            selection="gradual",
            granularity="channel",
            channels=self._callback.channel_counts(),
            details={"taylor_gradual": self._callback.record()},
        )

    def manifest_record(
        self, previous: ManifestPruning | None, compaction: Compaction
    ) -> ManifestPruning:
        return ManifestPruning(
            method=self.name,
            rounds=ChannelRounds([compaction.history]),
            taylor_gradual=TaylorGradualRecord(self._callback.record()),
        ).after(previous)
