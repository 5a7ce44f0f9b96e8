"""``secateurs demo``: train a small ResNet on the bundled digits and show what it costs."""

from __future__ import annotations

import argparse
import tempfile

from secateurs.cli.parser import add_command, positive_int
from secateurs.demo import run_demo

DESCRIPTION = """Train a ResNet-20 on scikit-learn's digits (bundled, no download; scaled to 32x32),
prune it to a quarter of its MACs at widths onnxruntime runs efficiently with two methods,
fine-tune briefly, and print accuracy, MACs, parameters and latency (PyTorch eager and
onnxruntime, batch 64 and 1) before and after as one table.

example:
  secateurs demo --out runs/demo
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "demo", "a two-minute tour on bundled data", DESCRIPTION)
    parser.add_argument("--out", help="run directory (default: a temporary one)")
    parser.add_argument(
        "--epochs", type=positive_int, default=15, help="training epochs before pruning"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out:
        run_demo(args.out, args.epochs)
    else:
        with tempfile.TemporaryDirectory(prefix="secateurs-demo-") as out:
            run_demo(out, args.epochs)
    return 0
