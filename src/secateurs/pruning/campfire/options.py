"""The options of Campfire as a training-time method (``secateurs campfire``, and
``prune_while_training(method="campfire", ...)``), declared once."""

from __future__ import annotations

from dataclasses import dataclass

from secateurs.errors import SecateursError
from secateurs.options import count, fraction, option
from secateurs.pruning.campfire.callback import DEFAULT_INTERVAL, GRANULARITIES

LR_SCHEDULES = ("cosine", "step", "constant")

DESCRIPTION = """Train a saved model with Campfire (Gamboa et al. 2020): magnitude masks inside
every kernel (window), per filter (kernel) or of whole filters, raised on the AGP cubic ramp from
--prune-start to --prune-end, then frozen while training continues sparse; no regularisation.
Compacts the result (filters removed; kernel-level layers as gathered group convolutions where
measured faster; window layers kept dense, packed in window.safetensors, their sparse path timed)
and writes the model with report.json, report.md and report.png to OUT.

examples:
  secateurs campfire runs/r20/model --data ../shared/data/cifar10 --granularity window \\
      --sparsity 0.7 --epochs 10 -o runs/r20-campfire-w70
  secateurs campfire runs/r20/model --data ../shared/data/cifar10 --granularity kernel \\
      --target-macs 0.5 -o runs/r20-campfire-k
"""


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
class CampfireOptions:
    """Campfire's own options (the run's --target-macs, --epochs and --seed are shared)."""

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
