"""SG-CNN inside the training loop: at each scheduled stage every grouped layer is regrouped at
the stage's connection sparsity; between stages the connections its groups do not read stay
exactly zero (weights, gradients and momentum), so the trained network is the grouped one.

Resumption is exact: the state holds the stages applied and every layer's grouping, and
checkpoints are written between iterations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.pruning.compaction.layer_groups import LayerGroups, expand_keep
from secateurs.pruning.compaction.unread import check_policy
from secateurs.pruning.fixed_masks import mask_gradients, zero_masked
from secateurs.pruning.sgcnn.grouping import regroup
from secateurs.pruning.sgcnn.layers import final_sparsity, groupable_layers, layer_sparsity
from secateurs.pruning.sgcnn.schedule import stage_epochs, stage_sparsities
from secateurs.pruning.sgcnn.taylor import taylor_vectors
from secateurs.train.callback import Callback

if TYPE_CHECKING:
    from secateurs.train.trainer import Trainer

log = logging.getLogger(__name__)
IMPORTANCES = ("weight", "taylor")


@dataclass
class SGCNNSettings:
    """What SG-CNN prunes and when: the kept share of the model's MACs, the number of groups
    per layer (capped by its filter count), the scheme and its stages, the seed."""

    target_macs: float = 0.5
    groups: int = 16
    scheme: str = "LG"
    step: float = 0.1  # cp rises by this much a stage
    stage_epochs: int = 1  # scheme LG: epochs of local fine-tuning after each stage
    epochs: int = 10  # the run's total, which the schedule spreads the stages over
    seed: int = 0
    balanced: bool = False  # equal groups reading equally many channels (no padding)
    linear: bool = False  # group the fully connected layers too (but the last), capped
    importance: str = "weight"  # "weight" (sum of |W| over the kernel) or "taylor" (|W dL/dW|)
    unread: str = "if-faster"  # channels no group reads removed: "if-faster", "always", "never"


class SGCNNCallback(Callback):
    """Self-grouping convolution (Guo et al., Neural Networks 2020) as a trainer callback."""

    def __init__(self, settings: SGCNNSettings, input_size: Sequence[int]) -> None:
        if settings.importance not in IMPORTANCES:
            raise SecateursError(
                f"importance is one of {', '.join(IMPORTANCES)}, not {settings.importance!r}"
            )
        check_policy(settings.unread)  # refused before training, not after it
        if settings.groups < 1:
            raise SecateursError(f"groups must be at least 1, not {settings.groups}")
        self.settings = settings
        self.input_size = tuple(input_size)
        self.layers: dict[str, nn.Conv2d] = {}
        self.groups: dict[str, LayerGroups] = {}
        self.sparsities: list[float] = []
        self.starts: list[int] = []
        self.applied = 0  # stages applied so far
        self._pending: dict[str, Any] | None = None
        self._masks: list[tuple[nn.Parameter, Tensor]] | None = None  # built once a stage

    # -- set-up ----------------------------------------------------------------------------------
    def prepare(self, model: nn.Module) -> None:
        """Find the layers, turn the MACs target into stages (done by ``on_train_start``)."""
        self.layers = groupable_layers(model, self.input_size, self.settings.linear)
        largest = max(layer.weight.shape[0] for layer in self.layers.values())
        if self.settings.groups > largest:
            raise SecateursError(
                f"{self.settings.groups} groups exceed every layer's filter count (at most "
                f"{largest}): choose --groups {largest} or fewer"
            )
        final = final_sparsity(model, self.input_size, self.layers, self.settings.target_macs)
        self.sparsities = stage_sparsities(final, self.settings.step)
        self.starts = stage_epochs(
            self.settings.scheme,
            len(self.sparsities),
            self.settings.epochs,
            self.settings.stage_epochs,
        )
        if self._pending is not None:
            self.prepare_from_pending()

    def on_train_start(self, trainer: Trainer) -> None:
        if not self.layers:
            self.prepare(trainer.model)
        self.apply_due(trainer.epoch, trainer)

    # -- stages ----------------------------------------------------------------------------------
    def apply_due(self, epoch: int, trainer: Trainer | None = None) -> None:
        """Apply every stage scheduled at or before ``epoch`` not applied yet."""
        while self.applied < len(self.sparsities) and self.starts[self.applied] <= epoch:
            sparsity = self.sparsities[self.applied]
            vectors = self.importance(trainer)
            for name, conv in self.layers.items():
                kept = self.groups[name].keep if name in self.groups else None
                settings = self.settings
                self.groups[name] = regroup(
                    conv.weight,
                    settings.groups,
                    layer_sparsity(conv, sparsity),
                    settings.seed,
                    kept,
                    settings.balanced,
                    vectors.get(name),
                )
            self.applied += 1
            self._masks = None
            self.enforce(trainer.optimizer if trainer is not None else None)
            log.info(
                "SG-CNN stage %d/%d: %.0f%% of the grouped connections pruned",
                self.applied,
                len(self.sparsities),
                100 * sparsity,
            )

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        self.apply_due(epoch, trainer)

    def importance(self, trainer: Trainer | None) -> dict[str, Tensor]:
        """The stage's importance vectors by layer: empty for ``"weight"`` (regroup takes the
        weights' magnitude), Taylor importance over the trainer's next batches for ``"taylor"``."""
        if self.settings.importance != "taylor":
            return {}
        if trainer is None:
            raise SecateursError("Taylor importance needs the trainer's batches")
        return taylor_vectors(
            trainer.model, self.layers, trainer.train_loader, context=trainer.context
        )

    @property
    def over(self) -> bool:
        return bool(self.sparsities) and self.applied == len(self.sparsities)

    # -- the iteration ---------------------------------------------------------------------------
    def masks(self) -> list[tuple[nn.Parameter, Tensor]]:
        """(weight, 0/1 mask of its dtype broadcasting over it) of every grouped layer; built
        when the groups change, not on every training step."""
        if self._masks is None:
            self._masks = [
                (weight := self.layers[name].weight, expand_keep(groups.keep, weight))
                for name, groups in self.groups.items()
            ]
        return self._masks

    def enforce(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Pruned connections to zero: weights and their momentum."""
        zero_masked(self.masks(), optimizer)

    def after_backward(self, trainer: Trainer | None = None) -> None:
        mask_gradients(self.masks())

    def after_step(self, trainer: Trainer) -> None:
        self.enforce(trainer.optimizer)  # weight decay and momentum must not revive them

    # -- checkpoints and records -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "applied": self.applied,
            "groups": {name: groups.to_json() for name, groups in self.groups.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("settings", {})
        differ = sorted(k for k, v in asdict(self.settings).items() if saved.get(k, v) != v)
        if differ:
            raise SecateursError(
                f"the checkpoint was trained with other SG-CNN settings ({', '.join(differ)}): "
                "resume with the same ones"
            )
        self._pending = state
        if self.layers:
            self.prepare_from_pending()

    def prepare_from_pending(self) -> None:
        """The stages applied and the groupings a checkpoint holds, restored."""
        assert self._pending is not None
        self.applied = int(self._pending["applied"])
        self.groups = {n: LayerGroups.from_json(g) for n, g in self._pending["groups"].items()}
        self._masks = None
        self._pending = None

    def record(self) -> dict[str, Any]:
        """The run record: stages, their epochs, each layer's group count and sparsity."""
        return {
            "stages": self.sparsities,
            "stage_epochs": self.starts,
            "applied": self.applied,
            "layers": {
                name: {"groups": len(set(g.labels)), "sparsity": round(g.sparsity, 5)}
                for name, g in self.groups.items()
            },
        }
