"""Campfire as a training-time method: its callback (AGP masks inside kernels, per filter or
of whole filters, frozen after the end epoch) and its compaction (:mod:`.compaction`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from secateurs.measurement import count_cost
from secateurs.measurement.latency import LatencySettings
from secateurs.pruning.campfire.budget import nonzero_macs
from secateurs.pruning.campfire.callback import CampfireCallback, CampfireSettings
from secateurs.pruning.campfire.compaction import (
    compact_filters,
    compact_kernels,
    time_sparse_path,
)
from secateurs.pruning.campfire.options import DESCRIPTION, CampfireOptions, parse_layer_sparsity
from secateurs.pruning.campfire.window_store import save_windows
from secateurs.pruning.compaction.diverse_conv import diverse_convs_record
from secateurs.pruning.record import CampfireRecord, ChannelRounds, DiverseGroups, ManifestPruning
from secateurs.pruning.training_time import (
    Compaction,
    TrainingRun,
    TrainingTimeMethod,
    register_training_time,
)
from secateurs.report import PruningRecord

log = logging.getLogger(__name__)
WINDOW_FILE = "window.safetensors"


@register_training_time
class CampfireMethod(TrainingTimeMethod):
    """Campfire (Gamboa et al. 2020): gradual, regularisation-free structured sparse training."""

    name = "campfire"
    title = "Campfire"
    summary = (
        "gradual magnitude sparsity inside kernels (window), per filter (kernel) or of whole "
        "filters on the AGP ramp, masks frozen after a set epoch (Gamboa et al. 2020)"
    )
    usage = (
        "secateurs campfire MODEL --data PATH --granularity window|kernel|filter --target-macs R"
    )
    description = DESCRIPTION
    Options = CampfireOptions

    @classmethod
    def build(cls, options: CampfireOptions, run: TrainingRun) -> CampfireMethod:
        layers = parse_layer_sparsity(options.layer_sparsity)
        settings = CampfireSettings(
            options.granularity,
            target_macs=None if options.sparsity is not None or layers else run.target_macs,
            sparsity=options.sparsity,
            layer_sparsity=layers,
            start_epoch=options.prune_start,
            end_epoch=options.prune_end,
            interval=options.interval,
            epochs=run.epochs,
            prune_first_last=options.prune_first_last,
        )
        method = cls(settings, run.input_size)
        method.lr_schedule = options.schedule
        return method

    lr_schedule = "cosine"

    def recipe_settings(self) -> dict[str, Any]:
        return {"schedule": self.lr_schedule}

    def __init__(self, settings: CampfireSettings, input_size: Sequence[int]) -> None:
        self.settings = settings
        self._callback = CampfireCallback(settings, input_size)
        self._windows: dict[str, Any] = {}

    def callback(self) -> CampfireCallback:
        return self._callback

    def compact(
        self, model: nn.Module, input_size: Sequence[int], timing: LatencySettings
    ) -> Compaction:
        """Filter level: the channels removed (cost counted on the result). Otherwise the cost
        is the MACs of the non-zero weights (what a perfect sparse kernel computes), counted on
        the masked model; the executed form's MACs are in the record."""
        callback = self._callback
        if callback.filters is not None:
            history = compact_filters(model, input_size, callback.filters.plan())
            return Compaction(history)
        keep = dict(callback.keep)
        macs = nonzero_macs(model, input_size, keep)
        params = count_cost(model, input_size)["params"]
        params -= sum(int((~mask).sum()) for mask in keep.values())
        structures = self.settings.structures
        if structures == ("window",):
            self._windows = {
                n: (model.get_submodule(n).weight.detach().clone(), k) for n, k in keep.items()
            }
        if "kernel" in structures:
            history, layers, whole, unread = compact_kernels(model, input_size, keep, timing)
            record = {"diverse_groups": diverse_convs_record(model), "whole_model_check": whole}
            record["unread_channels"] = unread
        else:
            history, record = [], {}
            layers = time_sparse_path(model, input_size, list(keep), timing)
        record["executed_macs"] = count_cost(model, input_size)["macs"]
        return Compaction(history, record, layers, macs, params)

    def pruning_record(self, compaction: Compaction) -> PruningRecord:
        settings = asdict(self.settings)
        target = settings.pop("target_macs")
        for key in ("epochs", "structures"):
            del settings[key]
        details = {"campfire": self._callback.record(), "layers": compaction.layers}
        details["executed_macs"] = compaction.record.get("executed_macs")
        details["whole_model_check"] = compaction.record.get("whole_model_check", {})
        details["unread_channels"] = compaction.record.get("unread_channels", {})
        return PruningRecord(
            self.name,
            target_ratio=target,
            method_params=settings,
            selection="magnitude, gradual (AGP cubic), masks frozen after the end epoch",
            granularity=self.settings.granularity,
            details=details,
        )

    def manifest_record(
        self, previous: ManifestPruning | None, compaction: Compaction
    ) -> ManifestPruning:
        found = ManifestPruning(
            method=self.name,
            rounds=ChannelRounds([compaction.history]),
            campfire=CampfireRecord(self.settings.granularity),
        ).after(previous)
        if compaction.record.get("diverse_groups"):
            found.diverse_groups = DiverseGroups(compaction.record["diverse_groups"])
        return found

    def write_files(self, out: Path) -> dict[str, Any]:
        """Window layers packed beside the model; returns what was written (for the report)."""
        if not self._windows:
            return {}
        size = save_windows(out / WINDOW_FILE, self._windows)
        dense = sum(weight.numel() * weight.element_size() for weight, _ in self._windows.values())
        log.info("window layers packed: %d bytes (dense %d)", size, dense)
        return {"file": WINDOW_FILE, "bytes": size, "dense_bytes": dense}
