"""Gradual Taylor to a *latency* target (after HALP, Shen et al., NeurIPS 2022): the callback.

The scores are gradual Taylor's (:class:`GradualTaylor`: BatchNorm-gate Taylor contributions
summed every iteration, averaged, tied-mean'd and smoothed with ``momentum``), but the schedule is
HALP's: ``steps`` pruning steps spread evenly over the first ``prune_until`` of the run's
iterations, each averaging the iterations since the one before, and each step's channels chosen
by the latency side (``secateurs.latency.gradual``, handed in as a
:class:`~secateurs.pruning.latency_targets.GradualLatencyTargets`: this engine never imports
``latency/``): the budget descends from the dense latency to ``target x dense``, removals go
least importance per millisecond first between efficient widths, never under a group's floor
(:mod:`secateurs.pruning.floor`, as gradual Taylor's), and after the last step the model is
timed and corrected to within 3% of the target.

Every decision is recorded (JSON: the channels removed and given back, the budget, the predicted
and measured ratios) in the callback's state, which the trainer checkpoints every epoch with the
step schedule, so a resumed run carries the decisions of the steps before its checkpoint and
never times them again; the steps after it are decided on the same scores (exact resume) and
the same table. Under torchrun rank 0 decides (and times) and broadcasts the decision; the
other ranks block in the broadcast.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from secateurs.errors import SecateursError
from secateurs.pruning.floor import DEFAULT_ENDS_FRACTION, DEFAULT_FRACTION
from secateurs.pruning.graph import OUT
from secateurs.pruning.latency_targets import GradualLatencyTargets, GradualStep
from secateurs.pruning.masks import MASKED_TYPES
from secateurs.pruning.taylor_gradual import DEFAULT_MOMENTUM, GradualSchedule, GradualTaylor
from secateurs.train.distributed import DistributedContext, broadcast_object

if TYPE_CHECKING:
    from secateurs.train.trainer import Trainer

log = logging.getLogger(__name__)
DEFAULT_STEPS = 25  # pruning steps to a latency target
DEFAULT_PRUNE_UNTIL = 0.5  # the share of the run's iterations the steps spread over


@dataclass
class LatencySchedule:
    """Keep ``target`` of the dense model's latency, in ``steps`` steps over the first
    ``prune_until`` of the run."""

    target: float
    steps: int = DEFAULT_STEPS
    prune_until: float = DEFAULT_PRUNE_UNTIL
    momentum: float = DEFAULT_MOMENTUM
    min_channels: int = 1
    min_fraction: float = DEFAULT_FRACTION  # the floor (secateurs.pruning.floor)
    ends_fraction: float = DEFAULT_ENDS_FRACTION

    def __post_init__(self) -> None:
        if not 0 < self.target < 1:
            raise SecateursError(f"the latency target must be in (0, 1), not {self.target}")
        if self.steps < 1:
            raise SecateursError(f"steps must be at least 1, not {self.steps}")
        if not 0 < self.prune_until <= 1:
            raise SecateursError(f"prune_until must be in (0, 1], not {self.prune_until}")
        # the momentum and floor are checked as gradual Taylor's own
        GradualSchedule(
            0.5, 1, self.momentum, None, self.min_channels, self.min_fraction, self.ends_fraction
        )


def step_iterations(schedule: LatencySchedule, iterations: int) -> list[int]:
    """The iterations (1-based, after the optimizer step) at which the steps prune: evenly over
    the first ``prune_until`` of ``iterations``; a run too short for one step each is refused."""
    span = int(schedule.prune_until * iterations)
    if span < schedule.steps:
        raise SecateursError(
            f"{schedule.steps} pruning steps need at least {schedule.steps} iterations in the "
            f"first {schedule.prune_until:g} of the run, which has {iterations}: fewer --steps, "
            "a larger --prune-until or more epochs"
        )
    return [span * (k + 1) // schedule.steps for k in range(schedule.steps)]


class GradualTaylorLatency(GradualTaylor):
    """Gradual Taylor to a latency target (see the module docstring); ``latency`` is handed in
    by the run (:meth:`GradualTaylorMethod.use_latency`) before training."""

    def __init__(
        self,
        schedule: LatencySchedule,
        input_size: Sequence[int] | None = None,
        latency: GradualLatencyTargets | None = None,
    ) -> None:
        scoring = GradualSchedule(
            0.5,
            1,
            schedule.momentum,
            None,
            schedule.min_channels,
            schedule.min_fraction,
            schedule.ends_fraction,
        )
        super().__init__(scoring, input_size)
        self.latency_schedule = schedule
        self.latency = latency
        self.decisions_: list[dict[str, Any]] = []
        self.at_: list[int] = []
        self.context: DistributedContext | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        if self.graph_ is None:
            size = self.input_size or trainer.train_loader.image_set.input_size
            self.prepare(getattr(trainer.model, "module", trainer.model), size)
        if not self.at_:  # a resumed run keeps the schedule it started with
            iterations = trainer.config.epochs * trainer.steps_per_epoch
            self.at_ = step_iterations(self.latency_schedule, iterations)
        self.context = getattr(trainer, "context", None)
        main = self.context is None or self.context.is_main
        if not self.over and self.latency is not None and main:
            self.latency.warm(self.graph)  # the table timed now, not inside the first step

    def after_step(self, trainer: Trainer | None = None) -> None:
        self.zero_removed()
        self.step_ += 1
        if not self.over and self.at_ and self.step_ == self.at_[self.steps_]:
            self.latency_step()
            self.zero_removed()

    def latency_step(self) -> dict[str, Any]:
        """Score the iterations since the last step, then take this step's decision (rank 0's,
        timed there), record it and apply it."""
        since = self.decisions_[-1]["iteration"] if self.decisions_ else 0
        self.update_scores(max(1, self.step_ - since))
        decision = self._shared(self._decide)
        decision["iteration"] = self.step_
        self.decisions_.append(decision)
        for root, channel in decision["removed"]:
            self.removed_[root][channel] = True
        for root, channel in decision["restored"]:
            self.removed_[root][channel] = False
        self._revive(decision["restored"])
        self.steps_ += 1
        if self.steps_ == self.latency_schedule.steps:
            self.finished_step_ = self.step_
        return decision

    def _revive(self, restored: list[list[Any]]) -> None:
        """Channels an earlier step zeroed, given back: their producers re-initialised as
        PyTorch initialises a layer (weights uniform in +-1/sqrt(fan in), BatchNorm scale 1 and
        shift 0), drawn from a generator seeded by the iteration so every rank draws the same.
        Left at zero they would stay dead: no gradient reaches a zero channel through its ReLU."""
        given = {(root, channel) for root, channel in restored}
        generator = torch.Generator().manual_seed(self.step_)
        with torch.no_grad():
            for group in self.graph.prunable_groups:
                for member in group.layers(OUT, MASKED_TYPES):
                    pairs = zip(member.indices, member.root_indices, strict=True)
                    indices = [i for i, r in pairs if (group.root, r) in given]
                    if indices:
                        _reinitialise(member.module, indices, generator)

    def _decide(self) -> dict[str, Any]:
        if self.latency is None:
            raise SecateursError("gradual latency pruning was not handed a latency source")
        assert self.score_ is not None
        step = GradualStep(
            self.graph,
            {root: mask.clone() for root, mask in self.removed_.items()},
            self.score_,
            self.floors_,
            self.latency_schedule.target,
            self.steps_,
            self.latency_schedule.steps,
            copy.deepcopy(self.decisions_),
        )
        return self.latency.prune_step(step)

    def _shared(self, decide: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Rank 0's decision on every rank (the others wait for it in the broadcast)."""
        context = self.context
        if context is None or not context.enabled:
            return decide()
        return broadcast_object(decide() if context.is_main else None, context)

    @property
    def measured_ratio(self) -> float | None:
        """The measured latency ratio of the last step's model, after its corrections (None
        before the first step)."""
        if not self.decisions_:
            return None
        last = self.decisions_[-1]
        return last.get("chosen", last)["measured"]

    def record(self) -> dict[str, Any]:
        """The schedule and each step's figures, for the report."""
        return {
            **asdict(self.latency_schedule),
            "target_kind": "latency",
            "iterations": self.at_,
            "pruning_steps": self.steps_,
            "finished_step": self.finished_step_,
            "measured_ratio": self.measured_ratio,
            "decisions": [_summary(d) for d in self.decisions_],
        }

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        return {**state, "decisions": copy.deepcopy(self.decisions_), "at": list(self.at_)}

    def _load(self, state: dict[str, Any]) -> None:
        super()._load(state)
        self.decisions_ = copy.deepcopy(state["decisions"])
        self.at_ = list(state["at"])


def _reinitialise(module: nn.Module, indices: list[int], generator: torch.Generator) -> None:
    """Output channels ``indices`` of a convolution, linear layer or BatchNorm set as a fresh
    layer of PyTorch's would have them."""
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if weight is not None:
            weight[indices] = 1.0
        if bias is not None:
            bias[indices] = 0.0
        return
    if isinstance(module, nn.modules.conv._ConvTransposeNd) or weight is None:
        return  # never a gradual Taylor producer (its channels stay zero)
    bound = 1 / math.sqrt(weight[0].numel())
    for index in indices:
        fresh = (torch.rand(weight[index].shape, generator=generator) * 2 - 1) * bound
        weight[index] = fresh.to(weight.device, weight.dtype)
        if bias is not None:
            bias[index] = float((torch.rand(1, generator=generator) * 2 - 1) * bound)


def _summary(decision: dict[str, Any]) -> dict[str, Any]:
    """A step's figures without its channel lists (those stay in the checkpoint)."""
    return {
        "step": decision["step"],
        "iteration": decision.get("iteration"),
        "budget": decision["budget"],
        "aim": decision["aim"],
        "predicted": decision["predicted"],
        "measured": decision["measured"],
        "removed": len(decision["removed"]),
        "given_back": len(decision["restored"]),
        "corrections": [
            {key: c[key] for key in ("aim", "predicted", "measured")}
            for c in decision["corrections"]
        ],
        **({"chosen": decision["chosen"]} if "chosen" in decision else {}),
    }
