"""SG-CNN as a training-time method: its callback (grouping in stages while training) and its
compaction (unread input channels removed, grouped layers run as diverse group convolutions
where that is faster)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

from torch import nn

from secateurs.measurement import count_cost
from secateurs.measurement.latency import LatencySettings
from secateurs.pruning.compaction.diverse_conv import diverse_convs_record
from secateurs.pruning.compaction.fastest_form import make_diverse_if_faster
from secateurs.pruning.compaction.layer_groups import LayerGroups
from secateurs.pruning.compaction.layers import macs_per_weight
from secateurs.pruning.compaction.unread import remove_unread_if_faster
from secateurs.pruning.record import ChannelRounds, DiverseGroups, ManifestPruning, SGCNNRecord
from secateurs.pruning.sgcnn.callback import SGCNNCallback, SGCNNSettings
from secateurs.pruning.sgcnn.options import DESCRIPTION, SGCNNOptions
from secateurs.pruning.training_time import (
    Compaction,
    TrainingRun,
    TrainingTimeMethod,
    register_training_time,
)
from secateurs.report import PruningRecord


def connection_macs(
    model: nn.Module, input_size: Sequence[int], groups: Mapping[str, LayerGroups]
) -> int:
    """MACs with every grouped layer counted by its kept connections only (the paper's count;
    what a perfect kernel would compute), the rest of the model as it is."""
    total = count_cost(model, input_size)["macs"]
    uses = macs_per_weight(model, input_size)
    for name, layer in groups.items():
        dense = model.get_submodule(name).weight.numel() * uses[name]
        total -= round(dense * layer.sparsity)
    return int(total)


@register_training_time
class SGCNNMethod(TrainingTimeMethod):
    """Self-grouping convolution (Guo et al., Neural Networks 2020)."""

    name = "sgcnn"
    title = "SG-CNN"
    summary = (
        "filters clustered by the input channels they read (k-means); each group keeps its "
        "own inputs; the layer becomes a diverse group convolution (Guo et al. 2020)"
    )
    usage = "secateurs sgcnn MODEL --data PATH --target-macs R --groups G --scheme L|LG|G"
    description = DESCRIPTION
    Options = SGCNNOptions

    @classmethod
    def build(cls, options: SGCNNOptions, run: TrainingRun) -> SGCNNMethod:
        settings = SGCNNSettings(
            run.target_macs,
            options.groups,
            scheme=options.scheme,
            step=options.step,
            stage_epochs=options.stage_epochs,
            epochs=run.epochs,
            seed=run.seed,
            balanced=options.balanced,
            importance=options.importance,
            linear=options.linear,
            unread=options.unread,
        )
        return cls(settings, run.input_size)

    def __init__(self, settings: SGCNNSettings, input_size: Sequence[int]) -> None:
        self.settings = settings
        self._callback = SGCNNCallback(settings, input_size)
        self.connection_macs: int | None = None

    def callback(self) -> SGCNNCallback:
        return self._callback

    def compact(
        self, model: nn.Module, input_size: Sequence[int], timing: LatencySettings
    ) -> Compaction:
        """Unread channels removed (where that is faster, by default), then each grouped layer
        in its fastest form; the cost is counted on the result (a diverse layer: the
        connections it computes)."""
        history, groups, unread = remove_unread_if_faster(
            model, input_size, self._callback.groups, timing, self.settings.unread
        )
        self.connection_macs = connection_macs(model, input_size, groups)
        forms, whole = make_diverse_if_faster(model, input_size, groups, timing)
        cost = count_cost(model, input_size)
        return Compaction(
            history,
            {
                "diverse_groups": diverse_convs_record(model),
                "whole_model": whole,
                "unread_channels": unread,
            },
            [asdict(form) for form in forms],
            cost["macs"],
            cost["params"],
        )

    def pruning_record(self, compaction: Compaction) -> PruningRecord:
        schedule = asdict(self.settings)
        target = schedule.pop("target_macs")
        del schedule["epochs"]  # the run's, recorded with its settings
        details = {"sgcnn": self._callback.record(), "layers": compaction.layers}
        details["whole_model_check"] = compaction.record.get("whole_model", {})
        details["unread_channels"] = compaction.record.get("unread_channels", {})
        # the paper's count (kept connections only), beside the computed cost_after
        details["connection_macs"] = self.connection_macs
        return PruningRecord(
            self.name,
            target_ratio=target,
            method_params=schedule,
            selection="k-means groups, centroid-ranked inputs",
            granularity="kernel (filter x input channel), shared per group",
            details=details,
        )

    def manifest_record(
        self, previous: ManifestPruning | None, compaction: Compaction
    ) -> ManifestPruning:
        return ManifestPruning(
            method=self.name,
            rounds=ChannelRounds([compaction.history]),
            diverse_groups=DiverseGroups(compaction.record["diverse_groups"]),
            sgcnn=SGCNNRecord(self._callback.record()),
        ).after(previous)
