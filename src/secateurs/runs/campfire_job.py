"""The options of ``secateurs campfire`` (and of the Python API's Campfire run), declared once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from secateurs.errors import SecateursError
from secateurs.pruning.campfire.callback import (
    DEFAULT_INTERVAL,
    GRANULARITIES,
    CampfireSettings,
)
from secateurs.pruning.campfire.method import CampfireMethod
from secateurs.runs.options import count, fraction, option
from secateurs.runs.training_time_run import TrainingJob

LR_SCHEDULES = ("cosine", "step", "constant")


def parse_layer_sparsity(text: str | None) -> dict[str, float] | None:
    """``"layer1.0.conv1=0.5,layer2.0.conv1=0.7"`` -> {name: sparsity}."""
    if not text:
        return None
    found = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            found[name.strip()] = float(value)
        except ValueError:
            raise SecateursError(f"--layer-sparsity wants NAME=S pairs, not {item!r}") from None
    return found


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must be at least 0, not {value}"


@dataclass(kw_only=True)
class CampfireJob(TrainingJob):
    """Train a saved model with Campfire's gradual structured sparsity, then compact it."""

    granularity: str = option(
        "window",
        help="the structure: window (a fixed count of non-zeros in every kernel), kernel (a "
        "fixed count of whole kernels per filter), filter (whole channels, removed), "
        "unstructured (the AGP baseline) or kernel+window",
        choices=GRANULARITIES,
    )
    sparsity: float | None = fraction(
        None, "the same weight sparsity in every prunable layer (instead of --target-macs)"
    )
    layer_sparsity: str | None = option(
        None,
        help="weight sparsity per layer, NAME=S,NAME=S (instead of --target-macs); others dense",
        metavar="NAME=S,...",
    )
    prune_start: float = option(
        0.0, help="epoch the ramp starts (fractions allowed)", parse=float, check=_non_negative
    )
    prune_end: float | None = option(
        None,
        help="epoch the final sparsity is reached and the masks freeze (default: half the run)",
        parse=float,
    )
    interval: int = count(DEFAULT_INTERVAL, "training steps between mask updates")
    prune_first_last: bool = option(
        False, help="prune the first convolution and the last layer too (exempt by default)"
    )
    schedule: str = option("cosine", help="learning-rate schedule of the run", choices=LR_SCHEDULES)

    def make_method(self, input_size: Sequence[int]) -> CampfireMethod:
        layers = parse_layer_sparsity(self.layer_sparsity)
        settings = CampfireSettings(
            self.granularity,
            target_macs=None if self.sparsity is not None or layers else self.target_macs,
            sparsity=self.sparsity,
            layer_sparsity=layers,
            start_epoch=self.prune_start,
            end_epoch=self.prune_end,
            interval=self.interval,
            epochs=self.epochs,
            exempt_ends=not self.prune_first_last,
        )
        return CampfireMethod(settings, input_size)

    def recipe_settings(self) -> dict[str, Any]:
        return {"schedule": self.schedule}
