"""``secateurs models``: the registered models, one line each."""

from __future__ import annotations

import argparse
import fnmatch

from secateurs.cli.parser import add_command
from secateurs.models import list_models, model_entry


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands,
        "models",
        "list the model zoo",
        "List registered models.\n\nexample:\n  secateurs models 'resnet*'",
    )
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name filter")
    parser.add_argument("--torchvision", action="store_true", help="also list torchvision models")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name in list_models(args.pattern):
        print(f"{name:<16} {model_entry(name).description}")
    if args.torchvision:
        from secateurs.models.torchvision_models import list_torchvision_models

        for name in list_torchvision_models():
            if fnmatch.fnmatch(f"torchvision:{name}", args.pattern) or fnmatch.fnmatch(
                name, args.pattern
            ):
                print(f"torchvision:{name}")
    return 0
