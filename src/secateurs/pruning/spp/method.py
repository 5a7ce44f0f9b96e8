"""SPP as a training-time method: its callback (:class:`SPPCallback`) and its compaction (dead
channels removed through the engine, column-sparse layers compact where measured faster)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from secateurs.device import model_device
from secateurs.errors import SecateursError
from secateurs.measurement import count_cost
from secateurs.measurement.latency import LatencySettings
from secateurs.pruning.compaction.compact_conv import compact_columns_record
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.record import ChannelRounds, CompactColumns, ManifestPruning, SPPRecord
from secateurs.pruning.spp.callback import SPPCallback
from secateurs.pruning.spp.compact import compact_model
from secateurs.pruning.spp.cost import spp_macs
from secateurs.pruning.spp.groups import find_layers
from secateurs.pruning.spp.options import DESCRIPTION, SPPOptions
from secateurs.pruning.spp.sensitivity import ratios_from_scan, sensitivity_scan
from secateurs.pruning.surgery import remove_channels
from secateurs.pruning.training_time import (
    Compaction,
    TrainingRun,
    TrainingTimeMethod,
    register_training_time,
)
from secateurs.report import PruningRecord

if TYPE_CHECKING:
    from secateurs.data import LabelledData

log = logging.getLogger(__name__)
SENSITIVITY_FILE = "sensitivity.json"


@register_training_time
class SPPMethod(TrainingTimeMethod):
    """Structured Probabilistic Pruning (Wang et al., BMVC 2018); ``options`` are
    :class:`~secateurs.pruning.spp.callback.SPPSettings` fields."""

    name = "spp"
    title = "SPP"
    summary = (
        "Monte Carlo masks of columns, input channels or channels from rank-based "
        "probabilities during training, then compaction (Wang et al. 2018)"
    )
    usage = (
        "secateurs spp MODEL --data PATH --granularity column|input_channel|channel --target-macs R"
    )
    description = DESCRIPTION
    Options = SPPOptions

    def __init__(
        self, granularity: str, input_size: Sequence[int], epochs: int, **options: Any
    ) -> None:
        self.granularity = granularity
        self.input_size = tuple(input_size)
        self.epochs = epochs  # of the run, for the record
        self._options = options
        self._callback = SPPCallback(granularity, input_size=input_size, **options)
        self.name = "spp-oneshot" if self._callback.oneshot else "spp"
        self._sensitivity: float | None = None
        self._scan: dict[str, Any] | None = None

    @classmethod
    def build(cls, options: SPPOptions, run: TrainingRun) -> SPPMethod:
        if options.layer_ratios is not None and options.sensitivity is not None:
            raise SecateursError("give --layer-ratios or --sensitivity, not both")
        per_layer = options.layer_ratios is not None or options.sensitivity is not None
        method = cls(
            options.granularity,
            run.input_size,
            run.epochs,
            target_macs=None if per_layer else run.target_macs,
            # a sensitivity scan replaces these before training (prepare)
            layer_ratios=options.layer_ratios if options.sensitivity is None else {},
            A=options.A,
            u=options.u,
            interval=options.interval,
            seed=run.seed,
            oneshot=options.oneshot,
        )
        method._sensitivity = options.sensitivity
        return method

    def prepare(self, model: nn.Module, data: LabelledData) -> None:
        """With a sensitivity budget: each layer's ratio from a one-shot L1 scan on 512
        training images (written to OUT/sensitivity.json with the model)."""
        if self._sensitivity is None:
            return
        scanned = copy.deepcopy(model)
        layers = find_layers(scanned, self.input_size, self.granularity)
        seed = self._callback.seed
        batches = data.sample(512, 128, seed, model_device(scanned))
        base, scan = sensitivity_scan(scanned, layers, batches)
        ratios = ratios_from_scan(base, scan, self._sensitivity)
        self._scan = {"top1": base, "max_drop": self._sensitivity, "scan": scan, "ratios": ratios}
        options = {**self._options, "layer_ratios": ratios}
        self._callback = SPPCallback(self.granularity, input_size=self.input_size, **options)

    def write_files(self, out: Path) -> dict[str, Any]:
        if self._scan is None:
            return {}
        (out / SENSITIVITY_FILE).write_text(json.dumps(self._scan, indent=2) + "\n")
        return {"sensitivity": SENSITIVITY_FILE}

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
