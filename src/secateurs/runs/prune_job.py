"""The options of ``secateurs prune`` (and of :func:`secateurs.prune`), declared once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secateurs.errors import SecateursError
from secateurs.latency import LatencySource, LatencySpec, backend_names
from secateurs.options import count, fraction, option, positive_int
from secateurs.pruning.allocation import STRATEGIES, Allocation, Target
from secateurs.pruning.floor import FloorOptions
from secateurs.pruning.prune import PruneSettings
from secateurs.runs.fine_tuning import FineTuning
from secateurs.runs.job import RunJob

# Faster by default (docs/decisions.md, "Efficient widths by default"): a MACs or parameter target
# met by the engine's allocation keeps channel counts at multiples of 16, the width onnxruntime's
# blocked convolutions run on AVX-512 (and twice their block on AVX2), so a pruned model is
# faster on both without a latency table built unasked; exact widths are --round-to 1 (they meet
# the target exactly but ran slower than the dense model in onnxruntime: 0.30x in the demo).
# --round-to auto learns the widths on this machine; per-layer ratios and a latency target keep
# their own widths, and methods with their own allocation (PFP, WSP) are not rounded.
EFFICIENT_MULTIPLE = 16


def parse_layer_ratios(items: list[str]) -> dict[str, float]:
    """``LAYER=RATIO`` items as a mapping."""
    ratios = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            ratios[name] = float(value)
        except ValueError:
            raise SecateursError(f"--layer-ratios takes LAYER=RATIO, not {item!r}") from None
    return ratios


def parse_method_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items as method keyword arguments; values read as JSON when they parse."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SecateursError(f"--method-param takes KEY=VALUE, not {item!r}")
        try:
            params[key] = json.loads(value)  # numbers, true/false, null
        except json.JSONDecodeError:
            params[key] = value
    return params


def parse_round_to(text: str) -> int | str:
    """``--round-to``: a whole number of at least 1, or ``auto``."""
    if text == "auto":
        return text
    return positive_int(text)


def _round_to(value: int | str | None) -> str | None:
    if value is None or value == "auto" or (isinstance(value, int) and value >= 1):
        return None
    return f"takes a whole number of at least 1 or auto, not {value!r}"


@dataclass(kw_only=True)
class PruneJob(FloorOptions, FineTuning, RunJob):
    """Prune a saved model once (in one step or several), fine-tune it, measure it."""

    method: str = option(help="a pruning method (`secateurs methods` lists them)")
    method_params: dict[str, Any] = option(
        {},
        help="a method hyperparameter, e.g. selection=randomized for pfp (repeatable)",
        flags=("--method-param",),
        action="append",
        metavar="KEY=VALUE",
        convert=parse_method_params,
    )
    target_macs: float | None = fraction(
        None, "keep this fraction of the MACs (the default target: 0.5)", group="target"
    )
    target_params: float | None = fraction(
        None, "keep this fraction of the parameters", group="target"
    )
    target_latency: float | None = fraction(
        None,
        "keep this fraction of the unpruned model's latency, measured in --backend at "
        "--latency-batch (the most importance whose predicted latency fits, then measured)",
        group="target",
    )
    layer_ratios: dict[str, float] | None = option(
        None,
        help="remove these fractions of these groups' channels (by root layer), no target",
        nargs="+",
        metavar="LAYER=RATIO",
        group="target",
        convert=parse_layer_ratios,
    )
    strategy: str = option(
        "global",
        help="global: rank every group's channels together; uniform: the same ratio everywhere",
        choices=STRATEGIES,
    )
    normalize: str | None = option(
        None,
        help="per-group score normalisation for global ranking (default: the method's own)",
        choices=("none", "mean", "max"),
    )
    round_to: int | str | None = option(
        None,
        help="keep channel counts at a multiple of this (1 = exact), or auto: at the widths "
        "where --backend's latency table finds the layers efficient (default: "
        f"{EFFICIENT_MULTIPLE} for a MACs or parameter target, efficient in onnxruntime on AVX2 "
        "and AVX-512 alike; exact for --layer-ratios and methods that allocate their own way)",
        parse=parse_round_to,
        check=_round_to,
    )
    backend: str = option(
        "onnxruntime",
        help="the runtime --target-latency and --round-to auto measure in",
        choices=tuple(backend_names()),
    )
    latency_batch: int = count(1, "images per run when --target-latency and --round-to auto time")
    latency_cache: Path | None = option(
        None,
        help="directory of the latency tables (default: ~/.cache/secateurs/latency)",
        parse=Path,
    )
    steps: int = count(1, "reach the target in this many geometric steps, fine-tuning between them")
    fold_bias: bool = option(
        False, help="fold removed channels' mean output into the next layer's bias (needs --data)"
    )
    recalibrate_bn: int = count(
        0,
        "re-estimate BatchNorm statistics on this many training batches after pruning, "
        "before fine-tuning (needs --data; 0 = off)",
        least=0,
        metavar="BATCHES",
    )
    scoring_batches: int = count(8, "training batches a data-driven method scores channels on")

    @property
    def target(self) -> Target | None:
        """The cost target (None when per-layer ratios are given)."""
        if self.layer_ratios is not None:
            return None
        if self.target_params is not None:
            return Target("params", self.target_params)
        if self.target_latency is not None:
            return Target("latency", self.target_latency)
        return Target("macs", 0.5 if self.target_macs is None else self.target_macs)

    @property
    def rounding(self) -> int | str:
        """The channel multiple asked for: ``--round-to``, else the efficient default where the
        engine's allocation meets a MACs or parameter target, else exact (1)."""
        if self.round_to is not None:
            return self.round_to
        if self.layer_ratios is not None or self.target_latency is not None:
            return 1
        from secateurs.pruning.methods import PruningMethod, method_class

        own_allocation = method_class(self.method)._allocate is not PruningMethod._allocate
        return 1 if own_allocation else EFFICIENT_MULTIPLE

    @property
    def uses_latency(self) -> bool:
        """Whether pruning times models (a latency target, or automatic widths)."""
        return self.target_latency is not None or self.rounding == "auto"

    def latency_spec(self) -> LatencySpec:
        return LatencySpec(
            self.backend,
            self.latency_batch,
            self.threads,
            model_repeats=self.latency_repeats or 30,
            cache=self.latency_cache,
        )

    def settings(self) -> PruneSettings:
        auto = self.rounding == "auto"
        allocation = Allocation(
            strategy=self.strategy,
            normalize=self.normalize,
            round_to=1 if auto else int(self.rounding),
            min_channels=self.min_channels,
            min_fraction=self.min_fraction,
            ends_fraction=self.ends_min_fraction,
            auto_widths=auto,
            latency=LatencySource(self.latency_spec()) if self.uses_latency else None,
        )
        return PruneSettings(self.target, self.layer_ratios, allocation, self.steps, self.fold_bias)

    def check(self) -> None:
        super().check()
        from secateurs.pruning.methods import create_method

        try:
            create_method(self.method, seed=self.seed, **self.method_params)
        except TypeError as error:
            raise SecateursError(f"bad parameter for method {self.method!r}: {error}") from None
        self.settings()  # the target, the steps and the allocation, checked
        for flag, asked in (
            ("--finetune-epochs", self.finetune_epochs),
            ("--fold-bias", self.fold_bias),
            ("--recalibrate-bn", self.recalibrate_bn),
        ):
            if asked and not self.data:
                raise SecateursError(f"{flag} runs training images through the model: pass --data")
        self._check_latency()
        if self.distill and not self.finetune_epochs:
            raise SecateursError("--distill applies to fine-tuning: pass --finetune-epochs")

    def _check_latency(self) -> None:
        """A latency target needs the engine's allocation, global ranking and one step."""
        if self.target_latency is None or self.layer_ratios is not None:
            return
        from secateurs.pruning.methods import PruningMethod, method_class

        if method_class(self.method)._allocate is not PruningMethod._allocate:
            raise SecateursError(
                f"--target-latency ranks a method's scores; {self.method} allocates channels "
                "its own way (use --target-macs with it)"
            )
        if self.strategy != "global":
            raise SecateursError("--target-latency allocates globally: drop --strategy uniform")
