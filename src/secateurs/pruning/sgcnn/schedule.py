"""SG-CNN's progressive schedule: connection sparsity raised in stages (cp = 10%, 20%, ..., the
target), and when each stage happens under the three fine-tuning schemes.

- ``L`` (local): the stages are spread evenly over the run; the epochs after each stage
  fine-tune that stage's network, the last stage's to the end of the run.
- ``LG`` (local, then global): one stage every ``stage_epochs`` epochs from the start, then the
  rest of the run fine-tunes the final network.
- ``G`` (global): every stage at the start (regrouping at 10%, 20%, ... in turn, no training
  between), then the whole run fine-tunes the final network.

All three are pure functions of (epochs, stages, stage_epochs), so a resumed run applies the
same stages at the same epochs.
"""

from __future__ import annotations

import math

from secateurs.errors import SecateursError

SCHEMES = ("L", "LG", "G")
MAX_SPARSITY = 0.95  # a group keeps at least one channel; beyond this the layer is all but gone


def stage_sparsities(final: float, step: float = 0.1) -> list[float]:
    """step, 2 step, ... below ``final``, then ``final``: the cp of each stage."""
    if not 0 < final <= MAX_SPARSITY:
        raise SecateursError(f"connection sparsity must be in (0, {MAX_SPARSITY}], not {final:.3f}")
    if not 0 < step < 1:
        raise SecateursError(f"the sparsity step must be in (0, 1), not {step}")
    count = math.ceil(final / step - 1e-9)
    return [round(step * k, 10) for k in range(1, count)] + [final]


def stage_epochs(scheme: str, stages: int, epochs: int, every: int = 1) -> list[int]:
    """The epoch (0-based, counted in completed epochs) at whose start each stage is applied."""
    if scheme not in SCHEMES:
        raise SecateursError(f"the scheme is one of {', '.join(SCHEMES)}, not {scheme!r}")
    if scheme == "G":
        return [0] * stages
    if scheme == "L":
        if epochs < stages:
            raise SecateursError(
                f"scheme L fine-tunes after each of {stages} stages: give at least {stages} epochs"
            )
        return [stage * epochs // stages for stage in range(stages)]
    if stages * every >= epochs:
        raise SecateursError(
            f"scheme LG needs more than {stages} stages x {every} epochs for its global "
            f"fine-tuning: give more epochs (or --stage-epochs, or scheme L)"
        )
    return [stage * every for stage in range(stages)]
