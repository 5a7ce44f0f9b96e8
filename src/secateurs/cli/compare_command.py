"""``secateurs compare``: several pruning runs side by side, as a table and a plot."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from secateurs.cli.parser import add_command
from secateurs.comparison import load_runs, markdown_table, plot_comparison, unequal_terms
from secateurs.errors import SecateursError

DESCRIPTION = """Put pruning runs side by side: MACs and parameters kept, top-1 right after
pruning and after fine-tuning, and the measured speed-ups. Warns when the runs do not share a
model, an unpruned accuracy, a fine-tuning budget or a test set.

example:
  secateurs compare runs/r20-l1 runs/r20-taylor runs/r20-random-0 runs/r20-random-1 \\
      --plot runs/compare.png
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "compare", "pruning runs side by side", DESCRIPTION)
    parser.add_argument("runs", nargs="+", help="run directories (or their report.json files)")
    parser.add_argument("--plot", type=Path, help="write top-1 against MACs and parameters here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    runs = load_runs(args.runs)
    warnings = unequal_terms(runs)
    if args.json:
        print(json.dumps({"runs": [asdict(run) for run in runs], "unequal_terms": warnings}))
    else:
        print(markdown_table(runs), end="")
    for line in warnings:
        print(f"secateurs: warning: {line}", file=sys.stderr)
    if args.plot:
        try:
            plot_comparison(runs, args.plot)
        except (OSError, ValueError) as error:  # no such folder, unknown image format
            raise SecateursError(f"cannot write the plot {args.plot}: {error}") from None
        if not args.json:
            print(f"plot: {args.plot}")
    return 0
