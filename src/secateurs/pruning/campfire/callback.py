"""Campfire inside the training loop: the masks follow the AGP ramp from the start epoch to the
end epoch (recomputed by magnitude every ``interval`` steps), then stay frozen while training
continues sparse. Between updates masked weights stay exactly zero: their gradients are masked
before the optimizer steps, and weights and momentum are masked again after it (weight decay and
momentum must not revive them).

Resumption is exact: the state holds the step and every mask; checkpoints are written between
steps. Masks depend only on the weights and the step, so under DDP (identical weights on every
rank) every rank computes the same masks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.pruning.campfire.budget import LayerBudget, plan_budgets
from secateurs.pruning.campfire.filters import FilterLevel
from secateurs.pruning.campfire.schedule import AGPSchedule
from secateurs.pruning.campfire.structures import CONV_LOCAL, layer_keep
from secateurs.pruning.fixed_masks import mask_gradients, zero_masked
from secateurs.train.callback import Callback

if TYPE_CHECKING:
    from secateurs.train.trainer import Trainer

log = logging.getLogger(__name__)
GRANULARITIES = ("window", "kernel", "filter", "unstructured", "kernel+window")
DEFAULT_INTERVAL = 100  # steps between mask updates (AGP: 100-1000 made little difference)


def parse_granularity(text: str) -> tuple[str, ...]:
    """``"kernel+window"`` -> ("kernel", "window"); filter level combines with nothing."""
    parts = tuple(sorted(set(text.split("+"))))
    if any(p not in (*CONV_LOCAL, "filter") for p in parts) or (
        "filter" in parts and len(parts) > 1
    ):
        raise SecateursError(
            f"granularity {text!r}: choose window, kernel, filter, unstructured or kernel+window"
        )
    return parts


@dataclass
class CampfireSettings:
    """What Campfire prunes and when. One budget: ``layer_sparsity`` (by layer), else
    ``sparsity`` (every eligible layer's weights), else ``target_macs`` (kept share of MACs).
    The ramp runs from ``start_epoch`` to ``end_epoch`` (default: half of ``epochs``)."""

    granularity: str = "window"
    target_macs: float | None = 0.5
    sparsity: float | None = None
    layer_sparsity: dict[str, float] | None = None
    start_epoch: float = 0.0
    end_epoch: float | None = None
    interval: int = DEFAULT_INTERVAL
    epochs: int = 10
    prune_first_last: bool = False  # the first convolution and the last layer (else exempt)
    structures: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.structures = parse_granularity(self.granularity)
        if self.end_epoch is None:
            self.end_epoch = self.epochs / 2
        if not 0 <= self.start_epoch < self.end_epoch <= self.epochs:
            raise SecateursError(
                f"pruning runs from epoch {self.start_epoch:g} to {self.end_epoch:g}: it must "
                f"start before it ends, within the run's {self.epochs} epochs"
            )


class CampfireCallback(Callback):
    """Campfire (Gamboa et al. 2020) as a trainer callback."""

    def __init__(self, settings: CampfireSettings, input_size: Sequence[int]) -> None:
        self.settings = settings
        self.input_size = tuple(input_size)
        self.schedule: AGPSchedule | None = None
        self.budgets: list[LayerBudget] = []
        self.filters: FilterLevel | None = None
        self.keep: dict[str, Tensor] = {}
        self.layers: dict[str, nn.Module] = {}
        self.step = 0
        self.updates = 0
        self._pending: dict[str, Any] | None = None
        self._masks: list[tuple[nn.Parameter, Tensor]] | None = None

    # -- set-up ----------------------------------------------------------------------------------
    def prepare(self, model: nn.Module, steps_per_epoch: int) -> None:
        """Budgets, layers and schedule (done by ``on_train_start``)."""
        s = self.settings
        assert s.end_epoch is not None
        self.schedule = AGPSchedule.from_epochs(
            s.start_epoch, s.end_epoch, steps_per_epoch, s.interval
        )
        if s.structures == ("filter",):
            self.filters = FilterLevel(
                model, self.input_size, target_macs=s.target_macs, sparsity=s.sparsity
            )
        else:
            self.budgets = plan_budgets(
                model,
                self.input_size,
                s.structures,
                target_macs=s.target_macs,
                sparsity=s.sparsity,
                layer_sparsity=s.layer_sparsity,
                exempt_ends=not s.prune_first_last,
            )
            self.layers = {b.name: model.get_submodule(b.name) for b in self.budgets}
            self.keep = {
                n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in self.layers.items()
            }
        if self._pending is not None:
            self._restore(self._pending)
            self._pending = None

    def on_train_start(self, trainer: Trainer) -> None:
        if self.schedule is None:
            self.prepare(trainer.model, trainer.steps_per_epoch)
        self.enforce(trainer.optimizer)

    @property
    def frozen(self) -> bool:
        return self.schedule is not None and self.schedule.frozen(self.step)

    # -- masks -----------------------------------------------------------------------------------
    def update(self) -> None:
        """Masks for the ramp's value at the current step (by the weights' magnitudes)."""
        assert self.schedule is not None
        fraction = self.schedule.fraction(self.step)
        if self.filters is not None:
            self.filters.update(fraction)
        for budget in self.budgets:
            pruned = {g: round(fraction * count) for g, count in budget.pruned.items()}
            weight = self.layers[budget.name].weight
            self.keep[budget.name] = layer_keep(weight, pruned, self.keep[budget.name])
        self.updates += 1
        self._masks = None

    def masks(self) -> list[tuple[nn.Parameter, Tensor]]:
        """(parameter, 0/1 mask broadcasting over it); built when the masks change."""
        if self._masks is None:
            if self.filters is not None:
                self._masks = self.filters.parameter_masks()
            else:
                self._masks = [
                    (self.layers[n].weight, keep.to(self.layers[n].weight.dtype))
                    for n, keep in self.keep.items()
                ]
        return self._masks

    def enforce(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Masked entries to zero: weights and the optimizer's momentum."""
        zero_masked(self.masks(), optimizer)

    def after_backward(self, trainer: Trainer | None = None) -> None:
        mask_gradients(self.masks())

    def after_step(self, trainer: Trainer | None = None) -> None:
        optimizer = trainer.optimizer if trainer is not None else None
        self.step += 1
        assert self.schedule is not None
        if self.schedule.updates_at(self.step):
            self.update()
            if self.frozen:
                log.info(
                    "Campfire: masks frozen after step %d (%d updates)", self.step, self.updates
                )
        self.enforce(optimizer)

    # -- results ---------------------------------------------------------------------------------
    def sparsities(self) -> dict[str, float]:
        """Each masked layer's share of zero weights now."""
        return {n: round(1 - float(k.float().mean()), 5) for n, k in self.keep.items()}

    def record(self) -> dict[str, Any]:
        schedule = asdict(self.schedule) if self.schedule is not None else None
        found: dict[str, Any] = {"schedule_steps": schedule, "step": self.step}
        found["updates"], found["frozen"] = self.updates, self.frozen
        if self.filters is not None:
            found["removed_channels"] = {r: len(i) for r, i in self.filters.removed.items()}
        else:
            found["layer_sparsity"] = self.sparsities()
            found["pruned_per_structure"] = {b.name: b.pruned for b in self.budgets}
        return found

    # -- checkpoints -----------------------------------------------------------------------------
    def _settings_json(self) -> str:
        settings = asdict(self.settings)
        settings["structures"] = list(settings["structures"])
        return json.dumps(settings, sort_keys=True)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"settings": self._settings_json(), "step": self.step}
        state["updates"] = self.updates
        state["keep"] = {n: k.clone() for n, k in self.keep.items()}
        state["removed"] = json.dumps(self.filters.state() if self.filters else {})
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = _renamed(json.loads(state["settings"]))
        if saved != json.loads(self._settings_json()):
            now = json.loads(self._settings_json())
            differ = sorted(k for k in now if saved.get(k) != now[k])
            raise SecateursError(
                f"the checkpoint was trained with other Campfire settings ({', '.join(differ)}): "
                "resume with the same ones"
            )
        if self.schedule is None:
            self._pending = dict(state)
        else:
            self._restore(state)

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.step, self.updates = int(state["step"]), int(state["updates"])
        for name, keep in state["keep"].items():
            self.keep[name] = keep.bool().to(self.keep[name].device)
        if self.filters is not None:
            self.filters.load(json.loads(state["removed"]))
        self._masks = None


def _renamed(saved: dict[str, Any]) -> dict[str, Any]:
    """Settings a checkpoint written before 0.2 recorded under their old name:
    ``exempt_ends`` (True: the ends exempt) is ``prune_first_last`` inverted."""
    if "exempt_ends" in saved:
        saved = dict(saved)
        saved["prune_first_last"] = not saved.pop("exempt_ends")
    return saved
