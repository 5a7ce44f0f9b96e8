"""``secateurs spp``: prune a saved model during training with Structured Probabilistic Pruning,
compact it, and report before and after."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from secateurs.cli.parser import non_negative_int, positive_int, ratio
from secateurs.pruning.spp.callback import DEFAULT_INTERVAL
from secateurs.pruning.spp.groups import GRANULARITIES
from secateurs.pruning.spp.schedule import DEFAULT_A, DEFAULT_U
from secateurs.spp_pipeline import SPPJob, run_spp

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


def add_parser(commands: argparse._SubParsersAction) -> None:
    from secateurs.cli.parser import HelpFormatter

    parser = commands.add_parser(
        "spp",
        help="prune during training (SPP)",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("model", help="a saved model directory")
    parser.add_argument("--data", required=True, help="data set root (training and test)")
    parser.add_argument("--granularity", choices=GRANULARITIES, default="column")
    parser.add_argument(
        "--target-macs", type=ratio, default=0.5, help="keep this fraction of the MACs"
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=10, help="total epochs: pruning phase and retraining"
    )
    parser.add_argument("--lr", type=float, default=0.01, help="peak learning rate (cosine)")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--A", type=float, default=DEFAULT_A, help="largest increment")
    parser.add_argument("--u", type=float, default=DEFAULT_U, help="increment at N_c is u * A")
    parser.add_argument(
        "--interval", type=positive_int, default=DEFAULT_INTERVAL, help="iterations between updates"
    )
    parser.add_argument(
        "--oneshot",
        action="store_true",
        help="baseline: remove the smallest-L1 groups at once, then train with that mask",
    )
    parser.add_argument("--train-subset", type=positive_int, help="use this many training images")
    parser.add_argument(
        "--test-subset", type=positive_int, help="evaluate on this many test images"
    )
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument(
        "--latency-repeats",
        type=non_negative_int,
        default=30,
        help="0: no timing (compact layers untimed; rerun with --resume when the machine is quiet)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("-o", "--out", required=True, help="output directory (must be new)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    job = SPPJob(
        model_dir=Path(args.model),
        data=args.data,
        out=Path(args.out),
        granularity=args.granularity,
        target_macs=args.target_macs,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        A=args.A,
        u=args.u,
        interval=args.interval,
        oneshot=args.oneshot,
        seed=args.seed,
        threads=args.threads,
        latency_repeats=args.latency_repeats,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        resume=args.resume,
    )
    report = run_spp(job)
    if args.json:
        print(json.dumps(report))
    else:
        print((Path(args.out) / "report.md").read_text())
    return 0
