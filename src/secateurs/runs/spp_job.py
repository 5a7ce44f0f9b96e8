"""The options of ``secateurs spp`` (and of the Python API's SPP run), declared once."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from secateurs.data import LabelledData
from secateurs.device import model_device
from secateurs.errors import SecateursError
from secateurs.pruning.spp.callback import DEFAULT_INTERVAL
from secateurs.pruning.spp.groups import GRANULARITIES, find_layers
from secateurs.pruning.spp.method import SPPMethod
from secateurs.pruning.spp.schedule import DEFAULT_A, DEFAULT_U
from secateurs.pruning.spp.sensitivity import ratios_from_scan, sensitivity_scan
from secateurs.runs.options import count, fraction, option
from secateurs.runs.training_time_run import TrainingJob


def parse_spp_ratios(items: list[str]) -> dict[str, float]:
    """``LAYER=RATIO`` items, or one JSON file holding ``{"layer": ratio, ...}``, as a mapping
    of each layer's pruned ratio R (layers not named are not pruned)."""
    if len(items) == 1 and items[0].endswith(".json"):
        try:
            loaded = json.loads(Path(items[0]).read_text())
        except (OSError, ValueError) as error:
            raise SecateursError(f"--layer-ratios: cannot read {items[0]}: {error}") from None
        if not isinstance(loaded, dict):
            raise SecateursError(f"--layer-ratios: {items[0]} must hold one JSON object")
        pairs = list(loaded.items())
    else:
        pairs = [item.partition("=")[::2] for item in items]
    ratios = {}
    for name, value in pairs:
        try:
            ratios[str(name)] = float(value)
        except (TypeError, ValueError):
            raise SecateursError(f"--layer-ratios takes LAYER=RATIO, not {name}={value}") from None
        if not 0 <= ratios[str(name)] < 1:
            raise SecateursError(f"the pruned ratio of {name} must be in [0, 1), not {value}")
    return ratios


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
    layer_ratios: dict[str, float] | None = option(
        None,
        help="the pruned ratio R of each named layer instead of --target-macs (the paper's "
        'per-layer ratios): LAYER=RATIO items, or a JSON file {"LAYER": RATIO}',
        nargs="+",
        metavar="LAYER=RATIO|FILE.json",
        convert=parse_spp_ratios,
    )

    sensitivity: float | None = option(
        None,
        help="per-layer ratios from a sensitivity scan instead of --target-macs: each layer "
        "gets the largest of 0.1..0.9 whose one-shot L1 pruning alone costs at most this many "
        "top-1 points on 512 training images (scan in OUT/sensitivity.json)",
        parse=float,
        check=lambda v: None if v is None or v >= 0 else f"must be at least 0, not {v}",
    )

    def prepare(self, model: nn.Module, data: LabelledData, input_size: Sequence[int]) -> None:
        if self.sensitivity is None:
            return
        if self.layer_ratios is not None:
            raise SecateursError("give --layer-ratios or --sensitivity, not both")
        scanned = copy.deepcopy(model)
        layers = find_layers(scanned, input_size, self.granularity)
        batches = data.sample(512, 128, self.seed, model_device(scanned))
        base, scan = sensitivity_scan(scanned, layers, batches)
        self.layer_ratios = ratios_from_scan(base, scan, self.sensitivity)
        record = {"top1": base, "max_drop": self.sensitivity, "scan": scan}
        record["ratios"] = self.layer_ratios
        (self.out / "sensitivity.json").write_text(json.dumps(record, indent=2) + "\n")

    def make_method(self, input_size: Sequence[int]) -> SPPMethod:
        return SPPMethod(
            self.granularity,
            input_size,
            self.epochs,
            target_macs=None if self.layer_ratios is not None else self.target_macs,
            layer_ratios=self.layer_ratios,
            A=self.A,
            u=self.u,
            interval=self.interval,
            seed=self.seed,
            oneshot=self.oneshot,
        )
