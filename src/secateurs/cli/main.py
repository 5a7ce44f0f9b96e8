"""Entry point of the ``secateurs`` command."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from secateurs.cli import (
    compare_command,
    demo_command,
    eval_command,
    export_command,
    import_command,
    measure_command,
    methods_command,
    models_command,
    prune_command,
    robustness_command,
    train_command,
    training_time_command,
)
from secateurs.cli.parser import HelpFormatter, Parser
from secateurs.errors import SecateursError
from secateurs.models.user_factory import allow_factory
from secateurs.train.distributed import shutdown_distributed

COMMANDS = [
    import_command,
    train_command,
    eval_command,
    measure_command,
    export_command,
    prune_command,
    training_time_command,
    robustness_command,
    compare_command,
    models_command,
    methods_command,
    demo_command,
]


def build_parser() -> Parser:
    parser = Parser(
        prog="secateurs",
        description="Structured pruning that makes CNNs smaller and measurably faster.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--allow-factory",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="let this command import and call your code to rebuild a model saved by "
        "`secateurs import MODULE:FACTORY` (repeatable)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def log_level(verbose: bool, rank: str) -> int:
    """Under ``torchrun`` only rank 0 tells the story (every rank would print every epoch, each
    with its own images/s); the other ranks log warnings and errors."""
    if rank not in ("", "0"):
        return logging.WARNING
    return logging.DEBUG if verbose else logging.INFO


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=log_level(args.verbose, os.environ.get("RANK", "0")),
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        for spec in args.allow_factory:
            allow_factory(spec)
        return args.run(args)
    except SecateursError as error:
        print(f"secateurs: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("secateurs: interrupted", file=sys.stderr)
        return 130
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
