"""When Campfire's masks change and how much they prune: the AGP cubic ramp (Zhu & Gupta 2017),
as pure functions of the training step.

AGP: s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3 at t = t0, t0 + dt, ..., t0 + n * dt.
Campfire starts from a dense model (s_i = 0) and gives every layer its own final sparsity, so the
ramp is expressed as the *fraction of each layer's final pruning* done by step t:
1 - (1 - progress)^3. A layer's pruned count at step t is that fraction of its final count.
"""

from __future__ import annotations

from dataclasses import dataclass

from secateurs.errors import SecateursError


def agp_fraction(step: int, start: int, end: int) -> float:
    """Share of the final pruning done at ``step`` (0 before ``start``, 1 from ``end`` on)."""
    if step < start:
        return 0.0
    if step >= end:
        return 1.0
    progress = (step - start) / (end - start)
    return 1.0 - (1.0 - progress) ** 3


@dataclass(frozen=True)
class AGPSchedule:
    """Masks are updated at ``start``, every ``interval`` steps after it, and at ``end``; from
    ``end`` on they are frozen (training continues sparse)."""

    start: int  # first update step
    end: int  # last update step: the final sparsity is reached here
    interval: int  # steps between updates (dt)

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise SecateursError(
                f"the mask update interval must be at least 1, not {self.interval}"
            )
        if not 0 <= self.start < self.end:
            raise SecateursError(
                f"pruning must start before it ends (steps {self.start} and {self.end})"
            )

    @classmethod
    def from_epochs(
        cls, start_epoch: float, end_epoch: float, steps_per_epoch: int, interval: int
    ) -> AGPSchedule:
        """Epochs (fractions allowed) turned into steps of ``steps_per_epoch``; a ramp that
        spans no step is refused with what to change."""
        start, end = round(start_epoch * steps_per_epoch), round(end_epoch * steps_per_epoch)
        if not start < end:
            raise SecateursError(
                f"the pruning ramp from epoch {start_epoch:g} to {end_epoch:g} spans no training "
                f"step ({steps_per_epoch} a epoch): train longer (--epochs), on more images "
                "(--train-subset, --batch-size), or ramp over more of the run (--prune-start, "
                "--prune-end)"
            )
        return cls(start, end, interval)

    def updates_at(self, step: int) -> bool:
        """Whether the masks are recomputed after ``step`` steps."""
        if step == self.end:
            return True
        return self.start <= step < self.end and (step - self.start) % self.interval == 0

    def fraction(self, step: int) -> float:
        """Share of the final pruning in force after ``step`` steps (the last update's value)."""
        if step < self.start:
            return 0.0
        if step >= self.end:
            return 1.0
        last = self.start + (step - self.start) // self.interval * self.interval
        return agp_fraction(last, self.start, self.end)

    def frozen(self, step: int) -> bool:
        return step >= self.end
