"""The options of ``secateurs spp`` (and of the Python API's SPP run), declared once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from secateurs.pruning.spp.callback import DEFAULT_INTERVAL
from secateurs.pruning.spp.groups import GRANULARITIES
from secateurs.pruning.spp.method import SPPMethod
from secateurs.pruning.spp.schedule import DEFAULT_A, DEFAULT_U
from secateurs.runs.options import count, fraction, option
from secateurs.runs.training_time_run import TrainingJob


@dataclass(kw_only=True)
class SPPJob(TrainingJob):
    """Train a saved model with SPP, then compact it."""

    granularity: str = option(
        "column",
        help="what one pruning decision removes: a column (one input channel's kernel in every "
        "filter), an input channel, or an output channel",
        choices=GRANULARITIES,
    )
    A: float = option(
        DEFAULT_A,
        help="largest probability increment (at the lowest rank)",
        parse=float,
        flags=("--A",),
        check=lambda v: None if 0 < v <= 1 else f"must be in (0, 1], not {v}",
    )
    u: float = fraction(DEFAULT_U, "the increment at the N_c-th rank is u * A", flags=("--u",))
    interval: int = count(DEFAULT_INTERVAL, "iterations between probability updates")
    oneshot: bool = option(
        False, help="baseline: remove the smallest-L1 groups at once, then train with that mask"
    )

    def make_method(self, input_size: Sequence[int]) -> SPPMethod:
        return SPPMethod(
            self.granularity,
            input_size,
            self.epochs,
            target_macs=self.target_macs,
            A=self.A,
            u=self.u,
            interval=self.interval,
            seed=self.seed,
            oneshot=self.oneshot,
        )
