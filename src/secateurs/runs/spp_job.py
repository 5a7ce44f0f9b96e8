"""The options of ``secateurs spp`` (and of the Python API's SPP run), declared once."""

from __future__ import annotations

from dataclasses import dataclass

from secateurs.cli.parser import positive_int, ratio
from secateurs.errors import SecateursError
from secateurs.pruning.spp.callback import DEFAULT_INTERVAL
from secateurs.pruning.spp.groups import GRANULARITIES
from secateurs.pruning.spp.schedule import DEFAULT_A, DEFAULT_U
from secateurs.runs.job import RunJob
from secateurs.runs.options import at_least, in_unit_interval, option, positive


@dataclass(kw_only=True)
class SPPJob(RunJob):
    """Train a saved model with SPP, then compact it."""

    data: str = option(help="data set root (training and test)")
    granularity: str = option(
        "column",
        help="what one pruning decision removes: a column (one input channel's kernel in every "
        "filter), an input channel, or an output channel",
        choices=GRANULARITIES,
    )
    target_macs: float = option(
        0.5, help="keep this fraction of the MACs", parse=ratio, check=in_unit_interval
    )
    epochs: int = option(
        10,
        help="total epochs: the pruning phase and the retraining with fixed masks",
        parse=positive_int,
        check=at_least(1),
    )
    lr: float = option(0.01, help="peak learning rate (cosine)", parse=float, check=positive)
    A: float = option(
        DEFAULT_A,
        help="largest probability increment (at the lowest rank)",
        parse=float,
        flags=("--A",),
        check=lambda v: None if 0 < v <= 1 else f"must be in (0, 1], not {v}",
    )
    u: float = option(
        DEFAULT_U,
        help="the increment at the N_c-th rank is u * A",
        parse=float,
        flags=("--u",),
        check=in_unit_interval,
    )
    interval: int = option(
        DEFAULT_INTERVAL,
        help="iterations between probability updates",
        parse=positive_int,
        check=at_least(1),
    )
    oneshot: bool = option(
        False, help="baseline: remove the smallest-L1 groups at once, then train with that mask"
    )

    def check(self) -> None:
        super().check()
        if not self.data:
            raise SecateursError("SPP trains the model: give --data")
