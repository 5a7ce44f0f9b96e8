"""SPP inside the training loop: a Monte Carlo mask every iteration, a probability update every
``interval`` iterations, fixed masks once every layer is done.

The masking scheme, per iteration (the trainer's hooks in order):

- ``before_step``: draw a keep vector per layer (one Bernoulli(1 - p) per group, from the
  callback's own generator), copy the dense values of every masked parameter aside, and multiply
  the mask into the parameters in place: the forward pass sees the masked weights.
- ``after_backward``: multiply the mask into the gradients (under DDP they are already averaged;
  the masks are the same on every rank), and copy aside the optimizer's per-parameter state
  (momentum buffers) of the masked parameters.
- the optimizer steps: kept entries are updated from their dense values, as usual.
- ``after_step``: masked-out entries get back their dense value *and* their optimizer state, so a
  group that was dropped for one iteration is exactly where it was before that iteration: neither
  weight decay nor momentum moved it. At channel granularity the BatchNorm running statistics of
  masked-out channels are put back too: they would otherwise decay towards the zeros the masked
  channel produced, and evaluating the unmasked model would divide by a near-zero variance.
  Then, every ``interval`` iterations, the probabilities are updated from the (dense) weights;
  groups reaching p = 1 are zeroed for good, weights and optimizer state.

Between iterations (evaluation, checkpoints) the model holds its dense weights with the
permanently pruned groups at zero: evaluating it is evaluating the pruned model so far. After
pruning is over the mask is the fixed complement of the pruned groups (the retraining phase).

Resumption is exact: the state dict holds the probabilities, the pruned flags, the counters and
the generator's state; checkpoints are written between iterations, when nothing is masked in
place. The generator is seeded with ``seed`` alone, never the rank, so under DDP every rank draws
the same masks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.spp.cost import ratios_for_macs
from secateurs.pruning.spp.groups import ConvColumns, ParameterMask, find_layers
from secateurs.pruning.spp.schedule import DEFAULT_A, DEFAULT_U
from secateurs.pruning.spp.state import SPPState
from secateurs.train.callback import Callback

if TYPE_CHECKING:
    from secateurs.train.trainer import Trainer

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 10  # iterations between probability updates (see docs/methods/spp.md)


@dataclass
class SPPSettings:
    """What an SPP run prunes and how fast: the granularity, one budget (``target_macs``: kept
    ratio of the model's MACs, split into a uniform pruned ratio per layer; ``ratio``: pruned
    ratio R of every layer; ``layer_ratios``: R per layer name), the increment function's
    ``A`` and ``u``, the update ``interval`` in iterations, the layers (default: every eligible
    one but the input layer) and the one-shot baseline switch."""

    granularity: str = "column"
    target_macs: float | None = None
    ratio: float | None = None
    layer_ratios: Mapping[str, float] | None = None
    A: float = DEFAULT_A
    u: float = DEFAULT_U
    interval: int = DEFAULT_INTERVAL
    seed: int = 0
    layers: Sequence[str] | None = None
    skip_input_layer: bool = True
    oneshot: bool = False


class SPPCallback(Callback):
    """Structured Probabilistic Pruning (Wang et al., BMVC 2018) as a trainer callback.

    Give exactly one of ``target_macs`` (kept ratio of the model's MACs, split into a uniform
    pruned ratio per layer), ``ratio`` (pruned ratio R of every layer) or ``layer_ratios``
    (R per layer name).

    ``oneshot=True`` is the deterministic baseline at the same granularity and budget: before the
    first iteration every layer loses its smallest-L1 groups at once, and training runs with that
    fixed mask (no probabilities, no Monte Carlo draws).
    """

    def __init__(
        self, granularity: str = "column", input_size: Sequence[int] | None = None, **options: Any
    ) -> None:
        """``options``: the fields of :class:`SPPSettings` (target, schedule, layers, seed)."""
        try:
            settings = SPPSettings(granularity=granularity, **options)
        except TypeError as error:
            raise SecateursError(f"SPP: {error}") from None
        if (
            sum(
                x is not None for x in (settings.target_macs, settings.ratio, settings.layer_ratios)
            )
            != 1
        ):
            raise SecateursError("SPP needs exactly one of target_macs, ratio or layer_ratios")
        if settings.interval < 1:
            raise SecateursError(f"the update interval must be at least 1, not {settings.interval}")
        self.granularity, self.target_macs = granularity, settings.target_macs
        self.ratio = settings.ratio
        layer_ratios = settings.layer_ratios
        self.layer_ratios = dict(layer_ratios) if layer_ratios is not None else None
        self.A, self.u, self.interval = settings.A, settings.u, settings.interval
        self.seed = seed = settings.seed
        self.layers = list(settings.layers) if settings.layers is not None else None
        self.skip_input_layer, self.input_size = settings.skip_input_layer, input_size
        self.oneshot = settings.oneshot
        self.generator_ = torch.Generator().manual_seed(seed)
        self.state_: SPPState | None = None
        self.step_ = 0  # iterations seen
        self.updates_ = 0  # probability updates done
        self.finished_step_: int | None = None  # iteration after which pruning was over
        self.predicted_macs_: float | None = None
        self._pending: dict[str, Any] | None = None
        self._active: list[tuple[nn.Parameter, Tensor, Tensor]] = []  # param, keep, dense copy
        self._optimizer_saved: list[dict[str, Tensor]] = []
        self._statistics: list[tuple[Tensor, Tensor, Tensor]] = []  # buffer, keep, saved copy

    # -- set-up ---------------------------------------------------------------------------------
    def prepare(self, model: nn.Module, input_size: Sequence[int]) -> SPPState:
        """Find the layers, split the target, build the state (done by ``on_train_start``)."""
        self.input_size = tuple(input_size)
        layers = find_layers(
            model, input_size, self.granularity, self.layers, self.skip_input_layer
        )
        if not layers:
            raise SecateursError(f"no layer of the model is prunable at {self.granularity} level")
        if self.target_macs is not None:
            ratios, self.predicted_macs_ = ratios_for_macs(
                model, input_size, layers, self.target_macs
            )
        elif self.ratio is not None:
            ratios = [self.ratio] * len(layers)
        else:
            assert self.layer_ratios is not None
            unknown = sorted(set(self.layer_ratios) - {layer.name for layer in layers})
            if unknown:
                raise SecateursError(
                    f"SPP cannot prune {', '.join(unknown)} at {self.granularity} level; "
                    f"prunable layers: {', '.join(layer.name for layer in layers)}"
                )
            ratios = [self.layer_ratios.get(layer.name, 0.0) for layer in layers]
        self.state_ = SPPState(layers, ratios, self.A, self.u)
        if self._pending is not None:
            self.state_.load_state_dict(self._pending)
            self._pending = None
        elif self.oneshot:
            self._zero_pruned(self.state_.prune_now(), None)
            self.finished_step_ = 0
        return self.state_

    def on_train_start(self, trainer: Trainer) -> None:
        if self.state_ is None:
            size = self.input_size or trainer.train_loader.image_set.input_size
            self.prepare(trainer.model, size)

    @property
    def state(self) -> SPPState:
        if self.state_ is None:
            raise SecateursError("SPP is not prepared: call prepare(model, input_size) first")
        return self.state_

    # -- the iteration ---------------------------------------------------------------------------
    def parameter_masks(self, keeps: Sequence[Tensor]) -> list[ParameterMask]:
        """Per-parameter masks (product over layers touching the same parameter)."""
        combined: dict[int, ParameterMask] = {}
        for layer, keep in zip(self.state.layers, keeps, strict=True):
            for parameter, mask in layer.masks(keep):
                if id(parameter) in combined:
                    mask = combined[id(parameter)][1] * mask
                combined[id(parameter)] = (parameter, mask)
        return list(combined.values())

    def before_step(self, trainer: Trainer | None = None) -> None:
        self.restore()  # an interrupted iteration must not leave masks behind
        keeps = self.state.draw(self.generator_)
        with torch.no_grad():
            for parameter, mask in self.parameter_masks(keeps):
                self._active.append((parameter, mask.bool(), parameter.detach().clone()))
                parameter.mul_(mask)
            for layer, keep in zip(self.state.layers, keeps, strict=True):
                for buffer, kept in layer.statistics(keep):
                    if not bool(kept.all()):
                        self._statistics.append((buffer, kept, buffer.clone()))

    def after_backward(self, trainer: Trainer | None = None) -> None:
        optimizer = trainer.optimizer if trainer is not None else None
        self._optimizer_saved = []
        for parameter, keep, _ in self._active:
            if parameter.grad is not None:
                parameter.grad.mul_(keep)
            state = optimizer.state.get(parameter, {}) if optimizer is not None else {}
            self._optimizer_saved.append(_shaped_like(state, parameter, clone=True))

    def after_step(self, trainer: Trainer | None = None) -> None:
        optimizer = trainer.optimizer if trainer is not None else None
        self.restore(optimizer)
        self.step_ += 1
        if self.state.over or self.step_ % self.interval:
            return
        newly = self.state.update()
        self.updates_ += 1
        if any(bool(n.any()) for n in newly):
            self._zero_pruned(newly, optimizer)
        if self.state.over and self.finished_step_ is None:
            self.finished_step_ = self.step_
            log.info(
                "SPP: pruning over after %d iterations (%d updates)", self.step_, self.updates_
            )

    def restore(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Put back the dense values (and optimizer state) of the masked-out entries, and the
        BatchNorm running statistics of masked-out channels (channel granularity): evaluation
        runs the unmasked model, whose channels' statistics must come from iterations where
        they were active, not from the zeros they produced while masked."""
        with torch.no_grad():
            for buffer, kept, saved in self._statistics:
                buffer.copy_(torch.where(kept, buffer, saved))
            for position, (parameter, keep, dense) in enumerate(self._active):
                parameter.copy_(torch.where(keep, parameter, dense))
                if optimizer is None or position >= len(self._optimizer_saved):
                    continue
                saved = self._optimizer_saved[position]
                for key, value in _shaped_like(optimizer.state.get(parameter, {}), parameter):
                    before = saved.get(key)
                    value.copy_(torch.where(keep, value, before if before is not None else 0))
        self._active, self._optimizer_saved, self._statistics = [], [], []

    def _zero_pruned(self, newly: Sequence[Tensor], optimizer) -> None:
        with torch.no_grad():
            for parameter, mask in self.parameter_masks([~n for n in newly]):
                parameter.mul_(mask)
                if optimizer is not None:
                    for _, value in _shaped_like(optimizer.state.get(parameter, {}), parameter):
                        value.mul_(mask)

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        ratios = self.state.pruned_ratios()
        log.info(
            "SPP after epoch %d: mean pruned ratio %.3f, %s",
            epoch,
            sum(ratios.values()) / len(ratios),
            "over" if self.state.over else "pruning",
        )

    # -- results --------------------------------------------------------------------------------
    def keep_masks(self) -> dict[str, Tensor]:
        """Column and input-channel granularity: {conv name: bool keep mask shaped like its
        weight}, the permanently pruned columns False (the fixed mask of the retraining phase)."""
        found = {}
        for index, layer in enumerate(self.state.layers):
            if not isinstance(layer, ConvColumns):
                raise SecateursError("keep_masks is for column and input-channel granularity")
            found[layer.name] = layer.masks(self.state.fixed_keep(index))[0][1].bool()
        return found

    def generator_clone(self) -> torch.Generator:
        """A copy of the mask generator: what the next draws will be, without consuming them."""
        clone = torch.Generator()
        clone.set_state(self.generator_.get_state())
        return clone

    def plan(self) -> PruningPlan:
        """Channel granularity: the pruned channels as an engine plan."""
        removals = {}
        for layer, pruned in zip(self.state.layers, self.state.pruned, strict=True):
            if isinstance(layer, ConvColumns):
                raise SecateursError("plan() is for channel granularity")
            removals[layer.name] = torch.nonzero(pruned).flatten().tolist()
        return PruningPlan(removals)

    def record(self) -> dict[str, Any]:
        """Hyperparameters and outcome, for a run's report."""
        return {
            "method": "spp",
            "params": {
                k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")
            },
            "iterations": self.step_,
            "updates": self.updates_,
            "finished_step": self.finished_step_,
            "over": self.state.over,
            "predicted_macs": self.predicted_macs_,
            "pruned_ratios": self.state.pruned_ratios(),
        }

    # -- checkpoints ----------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """What decides the run's masks: a resumed run must have the same."""
        return {
            "granularity": self.granularity,
            "target_macs": self.target_macs,
            "ratio": self.ratio,
            "layer_ratios": self.layer_ratios,
            "A": self.A,
            "u": self.u,
            "interval": self.interval,
            "oneshot": self.oneshot,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": json.dumps(self.settings()),
            "spp": self.state_.state_dict() if self.state_ is not None else self._pending,
            "generator": self.generator_.get_state(),
            "step": self.step_,
            "updates": self.updates_,
            "finished_step": -1 if self.finished_step_ is None else self.finished_step_,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "settings" in state:  # checkpoints from before the settings were saved lack them
            saved, given = json.loads(state["settings"]), self.settings()
            differ = [key for key in given if saved.get(key) != given[key]]
            if differ:
                listed = ", ".join(
                    f"{key} {saved.get(key)!r} (now {given[key]!r})" for key in differ
                )
                raise SecateursError(
                    f"the SPP run was started with other settings: {listed}; resume it with the "
                    "same ones"
                )
        self.generator_.set_state(state["generator"])
        self.step_, self.updates_ = int(state["step"]), int(state["updates"])
        finished = int(state["finished_step"])
        self.finished_step_ = None if finished < 0 else finished
        if self.state_ is not None:
            self.state_.load_state_dict(state["spp"])
        else:
            self._pending = state["spp"]  # the trainer resumes before on_train_start


def _shaped_like(state: Mapping[str, Any], parameter: Tensor, clone: bool = False) -> Any:
    """The optimizer's per-parameter tensors shaped like ``parameter`` (momentum buffers)."""
    found = {
        key: value
        for key, value in state.items()
        if isinstance(value, Tensor) and value.shape == parameter.shape
    }
    if clone:
        return {key: value.detach().clone() for key, value in found.items()}
    return list(found.items())
