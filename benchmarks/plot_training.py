"""Overlay the training curves (test error, training loss) of several runs in one figure.

python benchmarks/plot_training.py baseline=runs/r20 seed1=runs/r20-seed1 \
    --target 89.5 --reference ensemble=89.86 --out docs/results/resnet20-training.png

Each run is LABEL=DIR, where DIR holds the run's ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from secateurs.train.curves import plot_training
from secateurs.train.trainer import METRICS_FILE


def labelled(text: str) -> tuple[str, str]:
    label, separator, value = text.partition("=")
    if not separator or not label or not value:
        raise argparse.ArgumentTypeError(f"expected LABEL=VALUE, got {text!r}")
    return label, value


def level(text: str) -> tuple[str, float]:
    label, value = labelled(text)
    try:
        return label, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LABEL=TOP1 (a number), got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=labelled, metavar="LABEL=DIR")
    parser.add_argument("--target", type=float, help="a top-1 level to draw, e.g. 89.5")
    parser.add_argument(
        "--reference", action="append", type=level, default=[], metavar="LABEL=TOP1"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = {}
    for label, directory in args.runs:
        path = Path(directory) / METRICS_FILE
        if not path.is_file():
            parser.error(f"{path}: no such file")
        runs[label] = [json.loads(line) for line in path.open()]
    plot_training(runs, args.out, target=args.target, references=dict(args.reference))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
