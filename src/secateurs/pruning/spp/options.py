"""The options of SPP as a training-time method (``secateurs spp``, and
``prune_while_training(method="spp", ...)``), declared once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from secateurs.errors import SecateursError
from secateurs.options import count, fraction, option
from secateurs.pruning.spp.callback import DEFAULT_INTERVAL
from secateurs.pruning.spp.groups import GRANULARITIES
from secateurs.pruning.spp.schedule import DEFAULT_A, DEFAULT_U

DESCRIPTION = """Train a saved model with SPP (Wang et al., BMVC 2018): per-group pruning
probabilities, a Monte Carlo mask every iteration, groups pruned for good at probability 1, then
retraining with the fixed mask. Compacts the result (dead channels removed, column-sparse layers
run as compact convolutions where measured faster) and writes the model with report.json,
report.md and report.png to OUT.

examples:
  secateurs spp runs/r20/model --data ../shared/data/cifar10 --target-macs 0.5 --epochs 10 \\
      -o runs/r20-spp
  secateurs spp runs/r20/model --data ../shared/data/cifar10 --granularity channel -o runs/r20-sppc
  secateurs spp runs/r20/model --data ../shared/data/cifar10 --oneshot -o runs/r20-l1-columns
"""


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
class SPPOptions:
    """SPP's own options (the run's --target-macs, --epochs and --seed are shared)."""

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
