"""Learning-rate schedules as pure functions of the step: multipliers of the peak rate."""

from __future__ import annotations

import math
from collections.abc import Sequence


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear from ~0 to 1 over ``warmup_steps``, then half a cosine to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def warmup_step(
    step: int, total_steps: int, warmup_steps: int, milestones: Sequence[float], gamma: float
) -> float:
    """Linear warm-up, then multiplied by ``gamma`` at each milestone (a fraction of training)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    passed = sum(step >= milestone * total_steps for milestone in milestones)
    return gamma**passed
