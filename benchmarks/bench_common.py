"""What the pruning benchmarks share: the arguments naming the model, data, target and training,
and the loop that runs each named run once (a run with a report.json is done, so a benchmark
resumes after an interruption)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from secateurs.data.sources import default_cifar10_root

log = logging.getLogger("benchmark")


def add_run_arguments(parser: argparse.ArgumentParser, epochs: int) -> None:
    """--model, --data, --target-macs, --epochs and --lr, with the benchmarks' defaults."""
    parser.add_argument("--model", default="benchmarks/baselines/resnet20-cifar10")
    parser.add_argument("--data", default=str(default_cifar10_root()))
    parser.add_argument("--target-macs", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--lr", type=float, default=0.01)


def run_missing(out: Path, names: list[str], run: Callable[[str, Path], None]) -> None:
    """``run(name, out / name)`` for every run without a report.json yet."""
    for name in names:
        if (out / name / "report.json").exists():
            continue
        log.info("=== %s", name)
        run(name, out / name)


def run_then_summarise(
    parser: argparse.ArgumentParser,
    runs: list[str],
    out: str,
    run: Callable[[str, argparse.Namespace, Path], None],
    summary: Callable[[Path, list[str]], str],
    optional: Sequence[str] = (),
) -> None:
    """Add --threads, --runs, --out and --summary; parse; do the runs not done yet (unless
    --summary); print the summary table. ``optional`` runs are done only when --runs names
    them."""
    import torch

    parser.add_argument("--threads", type=int, default=2, help="for training")
    parser.add_argument("--runs", nargs="+", default=runs, choices=[*runs, *optional])
    parser.add_argument("--out", default=out)
    parser.add_argument("--summary", action="store_true", help="only print the Markdown table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    directory = Path(args.out)
    if not args.summary:
        torch.set_num_threads(args.threads)
        run_missing(directory, args.runs, lambda name, path: run(name, args, path))
    print(summary(directory, args.runs))
