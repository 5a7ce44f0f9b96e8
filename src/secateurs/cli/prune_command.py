"""``secateurs prune``: prune a saved model, fine-tune it, and report before and after."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from secateurs.cli.parser import non_negative_int, positive_int, ratio
from secateurs.errors import SecateursError
from secateurs.pipeline import DEFAULT_ROUND_TO, PruneJob, run_prune
from secateurs.pruning.allocation import STRATEGIES

DESCRIPTION = """Prune a saved model to a MACs or parameter target, fine-tune, and write the pruned
model with report.json, report.md and report.png to OUT.

examples:
  secateurs prune runs/r20/model --method l1 --target-macs 0.5 -o runs/r20-l1
  secateurs prune runs/r20/model --method taylor --target-macs 0.5 --data ../shared/data/cifar10 \\
      --finetune-epochs 10 -o runs/r20-taylor
  secateurs prune runs/r20/model --method l1 --layer-ratios layer1.0.conv1=0.5 -o runs/r20-one
"""


def _layer_ratios(items: list[str]) -> dict[str, float]:
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


def add_parser(commands: argparse._SubParsersAction) -> None:
    from secateurs.cli.parser import HelpFormatter

    parser = commands.add_parser(
        "prune", help="prune a model", description=DESCRIPTION, formatter_class=HelpFormatter
    )
    parser.add_argument("model", help="a saved model directory")
    parser.add_argument("--method", required=True, help="a method (`secateurs methods`)")
    parser.add_argument(
        "--method-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method hyperparameter, e.g. selection=randomized for pfp (repeatable)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target-macs", type=ratio, help="keep this fraction of the MACs")
    target.add_argument("--target-params", type=ratio, help="keep this fraction of parameters")
    target.add_argument(
        "--layer-ratios",
        nargs="+",
        metavar="LAYER=RATIO",
        help="prune these fractions of these groups (by root layer)",
    )
    parser.add_argument("--strategy", choices=STRATEGIES, default="global")
    parser.add_argument(
        "--normalize",
        choices=["none", "mean", "max"],
        help="per-layer score normalisation for global ranking [method's]",
    )
    parser.add_argument(
        "--round-to",
        type=positive_int,
        default=DEFAULT_ROUND_TO,
        help="keep channel counts at a multiple of this (measured CPU preference; 1 = exact)",
    )
    parser.add_argument("--steps", type=positive_int, default=1, help="prune in this many steps")
    parser.add_argument(
        "--fold-bias",
        action="store_true",
        help="fold removed channels' mean output into the next layer's bias (needs --data)",
    )
    parser.add_argument(
        "--recalibrate-bn",
        type=non_negative_int,
        default=0,
        metavar="BATCHES",
        help="re-estimate BatchNorm statistics on this many training batches after pruning, "
        "before fine-tuning (needs --data; 0 = off)",
    )
    parser.add_argument(
        "--distill",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="fine-tune with the unpruned model as teacher: WEIGHT on its soft targets, "
        "1 - WEIGHT on the labels (knowledge distillation, temperature 4; 0 = off)",
    )
    parser.add_argument("--data", help="data set root: scoring data, accuracy, fine-tuning")
    parser.add_argument("--finetune-epochs", type=non_negative_int, default=0)
    parser.add_argument("--finetune-lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--scoring-batches", type=positive_int, default=8)
    parser.add_argument("--train-subset", type=positive_int, help="use this many training images")
    parser.add_argument(
        "--test-subset", type=positive_int, help="evaluate on this many test images"
    )
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--latency-repeats", type=non_negative_int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("-o", "--out", required=True, help="output directory (must be new)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    job = PruneJob(
        model_dir=Path(args.model),
        method=args.method,
        method_params=parse_method_params(args.method_param),
        out=Path(args.out),
        target_kind="params" if args.target_params else "macs",
        target_ratio=args.target_params or args.target_macs or 0.5,
        layer_ratios=_layer_ratios(args.layer_ratios) if args.layer_ratios else None,
        strategy=args.strategy,
        normalize=args.normalize,
        round_to=args.round_to,
        data=args.data,
        finetune_epochs=args.finetune_epochs,
        finetune_lr=args.finetune_lr,
        batch_size=args.batch_size,
        scoring_batches=args.scoring_batches,
        steps=args.steps,
        seed=args.seed,
        threads=args.threads,
        latency_repeats=args.latency_repeats,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        resume=args.resume,
        fold_bias=args.fold_bias,
        recalibrate_bn=args.recalibrate_bn,
        distill=args.distill,
    )
    report = run_prune(job)
    if args.json:
        print(json.dumps(report))
    else:
        print((Path(args.out) / "report.md").read_text())
    return 0
