"""The options of ``secateurs sgcnn``, declared once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from secateurs.pruning.compaction.unread import UNREAD_POLICIES
from secateurs.pruning.sgcnn.callback import IMPORTANCES, SGCNNSettings
from secateurs.pruning.sgcnn.method import SGCNNMethod
from secateurs.pruning.sgcnn.schedule import SCHEMES
from secateurs.runs.options import count, option
from secateurs.runs.training_time_run import TrainingJob


@dataclass(kw_only=True)
class SGCNNJob(TrainingJob):
    """Train a saved model with SG-CNN, then run its grouped layers as diverse group convs."""

    groups: int = count(16, "groups per layer (k-means clusters of filters; capped by its filters)")
    scheme: str = option(
        "LG",
        help="fine-tuning scheme: L (after each stage), LG (after each stage, then the rest of "
        "the run globally), G (all stages at once, then the whole run)",
        choices=SCHEMES,
    )
    step: float = option(
        0.1,
        help="connection sparsity added per stage (stages at 10%%, 20%%, ... of the target)",
        parse=float,
        check=lambda v: None if 0 < v < 1 else f"must be in (0, 1), not {v}",
    )
    stage_epochs: int = count(1, "scheme LG: epochs of fine-tuning after each stage")
    balance: bool = option(
        False,
        help="equal groups, each reading equally many channels: the grouped form needs no "
        "padding (measured faster on this CPU; docs/results/sgcnn.md)",
    )

    importance: str = option(
        "weight",
        help="what groups the filters: weight (sum of |W| over each kernel, the paper's) or "
        "taylor (|W dL/dW| over 8 training batches at each stage: first-order Taylor)",
        choices=IMPORTANCES,
    )

    unread: str = option(
        "if-faster",
        help="input channels no group reads: removed if-faster (the whole model timed with and "
        "without them, in onnxruntime when installed; removed when untimed), always, or never",
        choices=UNREAD_POLICIES,
    )

    fc: bool = option(
        False,
        help="group the fully connected layers too (all but the last; at most 60%% of their "
        "connections pruned; they stay dense layers with zeros)",
    )

    def make_method(self, input_size: Sequence[int]) -> SGCNNMethod:
        schedule = {"scheme": self.scheme, "step": self.step, "stage_epochs": self.stage_epochs}
        settings = SGCNNSettings(
            self.target_macs,
            self.groups,
            epochs=self.epochs,
            seed=self.seed,
            balanced=self.balance,
            importance=self.importance,
            linear=self.fc,
            unread=self.unread,
            **schedule,
        )
        return SGCNNMethod(settings, input_size)
