"""Gradual Taylor pruning: the schedule of Molchanov, Mallya, Tyree, Frosio, Kautz ("Importance
Estimation for Neural Network Pruning", CVPR 2019), as a trainer callback.

One-shot Taylor (:mod:`secateurs.pruning.methods.taylor`) ranks every channel once, from a few
batches, and removes all it must at once; on a narrow network that can leave a layer at one or
two channels. The paper prunes gradually while training instead:

- every iteration, each channel's gate contribution ``(g dL/dg)^2`` (the same quantity as the
  one-shot method: ``gamma dL/dgamma + beta dL/dbeta`` of its BatchNorms, tied channels' gates
  added before squaring) is summed;
- every ``interval`` iterations (the paper's 30) the sums become the average over those
  iterations, divided by the number of gates a tied channel shares (:func:`tied_mean`), and the
  running score is smoothed: ``score <- momentum score + (1 - momentum) average`` (momentum 0.9);
- then the ``per_step`` lowest-scoring channels still alive, ranked globally with no per-layer
  normalisation, are removed (their producers' weights, biases and BatchNorm scale and shift
  zeroed, and kept at zero after every optimizer step), never leaving a group under its floor
  (:mod:`secateurs.pruning.floor`: ``min_fraction`` of its channels, ``ends_fraction`` for the
  stem and the classifier's input, at least ``min_channels``); pruning stops as soon as the
  predicted MACs reach ``target_macs``, and training goes on with the channels dead (fine-tuning).

A zeroed producer with a zeroed BatchNorm outputs exactly zero in training and eval mode, so the
physically pruned model (:meth:`GradualTaylor.plan` through surgery) computes what the trained
model computes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from secateurs.device import model_device
from secateurs.errors import SecateursError
from secateurs.pruning.channel_scores import gate_gradient, producing_layers, scatter, tied_mean
from secateurs.pruning.cost_model import CostModel
from secateurs.pruning.floor import DEFAULT_ENDS_FRACTION, DEFAULT_FRACTION, Floor, group_floors
from secateurs.pruning.graph import OUT, ChannelGraph, ChannelGroup, Member
from secateurs.pruning.masks import MASKED_TYPES
from secateurs.pruning.plan import PruningPlan
from secateurs.train.callback import Callback

CPU = torch.device("cpu")  # the removals: bookkeeping the cost model reads, checkpointed as is

if TYPE_CHECKING:
    from secateurs.train.trainer import Trainer

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 30  # iterations between pruning steps (the paper's "frequency")
DEFAULT_MOMENTUM = 0.9  # smoothing of the score across pruning steps (the paper's)
DEFAULT_STEP_SHARE = 0.005  # channels per step, of all prunable channels (ResNet-20: 4 of 688)


@dataclass
class GradualSchedule:
    """How fast and how far: keep ``target_macs`` of the MACs, removing ``per_step`` channels
    (None: 0.5% of the prunable channels, at least 1) every ``interval`` iterations."""

    target_macs: float = 0.5
    interval: int = DEFAULT_INTERVAL
    momentum: float = DEFAULT_MOMENTUM
    per_step: int | None = None
    min_channels: int = 1
    min_fraction: float = DEFAULT_FRACTION  # the floor (secateurs.pruning.floor)
    ends_fraction: float = DEFAULT_ENDS_FRACTION

    def floor(self) -> Floor:
        """The fewest channels a group keeps."""
        return Floor(self.min_fraction, self.ends_fraction, self.min_channels)

    def __post_init__(self) -> None:
        if not 0 < self.target_macs < 1:
            raise SecateursError(f"target_macs must be in (0, 1), not {self.target_macs}")
        if self.interval < 1 or (self.per_step is not None and self.per_step < 1):
            raise SecateursError("the interval and channels per step must be at least 1")
        if not 0 <= self.momentum < 1:
            raise SecateursError(f"the momentum must be in [0, 1), not {self.momentum}")
        if self.min_channels < 1:
            raise SecateursError(f"min_channels must be at least 1, not {self.min_channels}")
        self.floor()  # checked


def _gates(group: ChannelGroup) -> list[Member]:
    """The gates of a group: its BatchNorms, or its producing layers when it has none."""
    return group.layers(OUT, (nn.modules.batchnorm._BatchNorm,)) or producing_layers(group)


class GradualTaylor(Callback):
    """Gradual Taylor pruning as a trainer callback (see the module docstring)."""

    def __init__(self, schedule: GradualSchedule, input_size: Sequence[int] | None = None) -> None:
        self.schedule = schedule
        self.input_size = tuple(input_size) if input_size is not None else None
        self.graph_: ChannelGraph | None = None
        self.removed_: dict[str, Tensor] = {}  # group root -> bool per channel
        self.sums_: dict[str, Tensor] = {}
        self.score_: dict[str, Tensor] | None = None  # smoothed across steps
        self.step_ = 0
        self.finished_step_: int | None = None
        self.steps_ = 0  # pruning steps taken
        self._pending: dict[str, Any] | None = None

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self, model: nn.Module, input_size: Sequence[int]) -> None:
        self.input_size = tuple(input_size)
        self.graph_ = ChannelGraph(model, self.input_size)
        groups = self.graph_.prunable_groups
        if not groups:
            raise SecateursError(f"{type(model).__name__} has no prunable channel groups")
        self.cost_model_ = CostModel(self.graph_)
        self.floors_ = group_floors(self.graph_, self.schedule.floor())
        self.removed_ = {g.root: torch.zeros(g.size, dtype=torch.bool, device=CPU) for g in groups}
        self.device_ = model_device(model)  # the sums grow every step: no copy off the device
        self.sums_ = {
            g.root: torch.zeros(g.size, dtype=torch.float64, device=self.device_) for g in groups
        }
        total = sum(g.size for g in groups)
        self.per_step_ = self.schedule.per_step or max(1, math.ceil(DEFAULT_STEP_SHARE * total))
        if self._pending is not None:
            self._load(self._pending)
            self._pending = None

    def on_train_start(self, trainer: Trainer) -> None:
        if self.graph_ is None:
            size = self.input_size or trainer.train_loader.image_set.input_size
            self.prepare(getattr(trainer.model, "module", trainer.model), size)
        if self.schedule.per_step is None:
            self.per_step_ = self.fitted_per_step(trainer.config.epochs * trainer.steps_per_epoch)

    def fitted_per_step(self, iterations: int) -> int:
        """The default channels per step for a run of ``iterations``: 0.5% of the prunable
        channels, or more where that would not reach the target within the first half of the
        run. The channels needed are estimated as uniform pruning's, (1 - sqrt(target)) of all
        (MACs fall with the square of the width). Without it a short run ends short of its
        target: ResNet-20 at half the MACs, an estimated 202 of 688 channels, is 51 steps of 4,
        1,530 iterations at the paper's interval, where 5 epochs on 10,000 images have 395."""
        total = sum(group.size for group in self.graph.prunable_groups)
        steps = max(1, iterations // 2 // self.schedule.interval)
        needed = math.ceil((1 - math.sqrt(self.schedule.target_macs)) * total)
        default = max(1, math.ceil(DEFAULT_STEP_SHARE * total))
        fitted = max(default, math.ceil(needed / steps))
        if fitted > default:
            log.info(
                "gradual taylor: %d channels a step (%d steps in half of %d iterations)",
                fitted,
                steps,
                iterations,
            )
        return fitted

    @property
    def graph(self) -> ChannelGraph:
        if self.graph_ is None:
            raise SecateursError("gradual Taylor is not prepared: call prepare(model, size)")
        return self.graph_

    @property
    def over(self) -> bool:
        return self.finished_step_ is not None

    # -- the iteration -----------------------------------------------------------------------
    def after_backward(self, trainer: Trainer | None = None) -> None:
        """Add this iteration's (g dL/dg)^2 to every alive channel's sum."""
        if self.over:
            return
        for group in self.graph.prunable_groups:
            gate = torch.zeros(group.size, dtype=torch.float64, device=self.device_)
            for member in _gates(group):
                if member.module.weight.grad is not None:
                    gate += scatter(group, member, gate_gradient(member.module))
            self.sums_[group.root] += gate.pow(2)

    def after_step(self, trainer: Trainer | None = None) -> None:
        self.zero_removed()
        self.step_ += 1
        if not self.over and self.step_ % self.schedule.interval == 0:
            self.prune_step()
            self.zero_removed()

    def prune_step(self) -> list[tuple[str, int]]:
        """Average and smooth the scores, remove up to ``per_step`` channels; returns them."""
        self.update_scores(self.schedule.interval)
        self.steps_ += 1
        return self._remove_lowest()

    def update_scores(self, iterations: int) -> None:
        """The sums of the last ``iterations`` averaged, tied-mean'd and smoothed into the
        score; the sums reset."""
        momentum = self.schedule.momentum
        averaged = {
            g.root: tied_mean(self.sums_[g.root] / iterations, _gates(g))
            for g in self.graph.prunable_groups
        }
        if self.score_ is None:
            self.score_ = averaged
        else:
            self.score_ = {
                root: momentum * self.score_[root] + (1 - momentum) * value
                for root, value in averaged.items()
            }
        for total in self.sums_.values():
            total.zero_()

    def _remove_lowest(self) -> list[tuple[str, int]]:
        assert self.score_ is not None
        candidates = sorted(
            (float(value), root, channel)
            for root, scores in self.score_.items()
            for channel, value in enumerate(scores.tolist())
            if not self.removed_[root][channel]
        )
        removed: list[tuple[str, int]] = []
        for _, root, channel in candidates:
            if self.predicted_macs() <= self.schedule.target_macs:
                self.finished_step_ = self.step_
                log.info("gradual taylor: target reached after %d iterations", self.step_)
                break
            if len(removed) == self.per_step_:
                break
            alive = int((~self.removed_[root]).sum())
            if alive <= self.floors_[root]:
                continue
            self.removed_[root][channel] = True
            removed.append((root, channel))
        else:
            self.finished_step_ = self.step_  # nothing left to remove
        return removed

    def predicted_macs(self) -> float:
        """The MACs ratio the channels removed so far leave (the engine's cost prediction)."""
        return self.cost_model_.predict(self.removed_)["macs"] / self.cost_model_.macs

    def zero_removed(self) -> None:
        """Zero the removed channels' producers (weights, biases, BatchNorm scale and shift)."""
        with torch.no_grad():
            for group in self.graph.prunable_groups:
                removed = self.removed_[group.root]
                if not bool(removed.any()):
                    continue
                for member in group.layers(OUT, MASKED_TYPES):
                    pairs = zip(member.indices, member.root_indices, strict=True)
                    _zero_outputs(member.module, [i for i, r in pairs if removed[r]])

    def plan(self) -> PruningPlan:
        """The channels removed so far, as a plan for surgery."""
        return PruningPlan(
            {
                root: torch.nonzero(mask).flatten().tolist()
                for root, mask in self.removed_.items()
                if bool(mask.any())
            }
        )

    def channel_counts(self) -> dict[str, dict[str, int]]:
        """Channels per prunable group before and after, by the group's root layer."""
        return {
            root: {"before": mask.numel(), "after": mask.numel() - int(mask.sum())}
            for root, mask in self.removed_.items()
        }

    def record(self) -> dict[str, Any]:
        """The schedule and how it went, for the report."""
        return {
            **asdict(self.schedule),
            "per_step_used": getattr(self, "per_step_", None),
            "pruning_steps": self.steps_,
            "finished_step": self.finished_step_,
            "predicted_macs": self.predicted_macs() if self.graph_ is not None else None,
        }

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "removed": {root: mask.clone() for root, mask in self.removed_.items()},
            "sums": {root: total.clone() for root, total in self.sums_.items()},
            "score": self.score_,
            "step": self.step_,
            "steps": self.steps_,
            "finished_step": self.finished_step_,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.graph_ is None:
            self._pending = state
        else:
            self._load(state)

    def _load(self, state: dict[str, Any]) -> None:
        self.removed_ = {root: mask.clone() for root, mask in state["removed"].items()}
        self.sums_ = {
            root: total.to(self.device_, copy=True) for root, total in state["sums"].items()
        }
        score = state["score"]
        self.score_ = None if score is None else {r: v.to(self.device_) for r, v in score.items()}
        self.step_, self.steps_ = state["step"], state["steps"]
        self.finished_step_ = state["finished_step"]


def _zero_outputs(module: nn.Module, indices: list[int]) -> None:
    """Zero output channels ``indices`` of a convolution, linear layer or BatchNorm."""
    if not indices:
        return
    dim = 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
    for name in ("weight", "bias"):
        parameter = getattr(module, name, None)
        if isinstance(parameter, Tensor):
            index = torch.tensor(indices, dtype=torch.long, device=parameter.device)
            parameter.index_fill_(dim if name == "weight" else 0, index, 0.0)
