"""``secateurs methods``: every pruning method, one-shot and training-time, with the command
that runs it."""

from __future__ import annotations

import argparse

from secateurs.cli.parser import add_command

DESCRIPTION = """List the pruning methods, one-shot (`secateurs prune --method NAME`) and
training-time (their own command), with the command that runs each.

example:
  secateurs methods
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "methods", "list pruning methods", DESCRIPTION)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from secateurs.api import list_methods

    for kind in ("one-shot", "training-time"):
        print(f"{kind} methods:")
        for method in (m for m in list_methods() if m["kind"] == kind):
            data = " [needs data]" if method["needs_data"] and kind == "one-shot" else ""
            print(f"  {method['name']:<10} {method['summary']}{data}")
            print(f"  {'':<10} run: {method['command']}")
    return 0
