"""SPP as a training-time method: its callback (:class:`SPPCallback`) and its compaction (dead
channels removed through the engine, column-sparse layers compact where measured faster)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from torch import nn

from secateurs.measure import count_cost
from secateurs.measure.latency import LatencySettings
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.history import compact_columns_record
from secateurs.pruning.record import ChannelRounds, CompactColumns, ManifestPruning, SPPRecord
from secateurs.pruning.spp.callback import SPPCallback
from secateurs.pruning.spp.compact import compact_model
from secateurs.pruning.spp.cost import spp_macs
from secateurs.pruning.surgery import remove_channels
from secateurs.pruning.training_time import TRAINING_TIME_METHODS, Compaction, TrainingTimeMethod
from secateurs.report import PruningRecord

log = logging.getLogger(__name__)


class SPPMethod(TrainingTimeMethod):
    """Structured Probabilistic Pruning (Wang et al., BMVC 2018); ``options`` are
    :class:`~secateurs.pruning.spp.callback.SPPSettings` fields."""

    summary, command = TRAINING_TIME_METHODS["spp"]

    def __init__(
        self, granularity: str, input_size: Sequence[int], epochs: int, **options: Any
    ) -> None:
        self.granularity = granularity
        self.input_size = tuple(input_size)
        self.epochs = epochs  # of the run, for the record
        self._callback = SPPCallback(granularity, input_size=input_size, **options)
        self.name = "spp-oneshot" if self._callback.oneshot else "spp"

    def callback(self) -> SPPCallback:
        return self._callback

    def compact(
        self, model: nn.Module, input_size: Sequence[int], timing: LatencySettings
    ) -> Compaction:
        """Channel granularity: the pruned channels removed (cost counted on the result).
        Column and input-channel granularity: dead channels removed, the rest compact where
        faster; the cost is the paper's count of kept columns on the masked model."""
        callback = self._callback
        if self.granularity == "channel":
            plan = callback.plan()
            if not plan.removals:
                return Compaction([])
            return Compaction(remove_channels(ChannelGraph(model, input_size), plan))
        # taken before compaction changes the layers' shapes
        keep = callback.keep_masks()
        macs = int(spp_macs(model, keep, input_size)["macs"])
        params = count_cost(model, input_size)["params"]
        params -= sum(int((~mask).sum()) for mask in keep.values())
        outcome = compact_model(model, input_size, keep, timing)
        return Compaction(
            outcome.history,
            {"compact_columns": compact_columns_record(model)},
            [vars(choice) for choice in outcome.layers],
            macs,
            params,
        )

    def pruning_record(self, compaction: Compaction) -> PruningRecord:
        callback = self._callback
        if not callback.state.over:
            log.warning(
                "SPP did not reach its target within %d epochs: compacted what it pruned",
                self.epochs,
            )
        return PruningRecord(
            method=self.name,
            target_ratio=callback.target_macs,
            method_params={
                "A": callback.A,
                "u": callback.u,
                "interval": callback.interval,
                "seed": callback.seed,
            },
            selection="deterministic one-shot" if callback.oneshot else "probabilistic (SPP)",
            granularity=self.granularity,
            details={"spp": callback.record(), "compact_layers": compaction.layers},
        )

    def manifest_record(
        self, previous: ManifestPruning | None, compaction: Compaction
    ) -> ManifestPruning:
        return ManifestPruning(
            method=self.name,
            rounds=ChannelRounds([compaction.history]),
            compact_columns=CompactColumns(compaction.record.get("compact_columns", {})),
            spp=SPPRecord(self.granularity, self._callback.record(), compaction.layers),
        ).after(previous)
