"""``secateurs methods``: the registered pruning methods, one line each."""

from __future__ import annotations

import argparse

from secateurs.pruning.methods import list_methods, method_class


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "methods",
        help="list pruning methods",
        description="List the pruning methods.\n\nexample:\n  secateurs methods",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name in list_methods():
        cls = method_class(name)
        data = " [needs data]" if cls.needs_data else ""
        print(f"{name:<12} {cls.summary}{data}")
    return 0
