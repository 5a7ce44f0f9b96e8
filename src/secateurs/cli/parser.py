"""An argparse parser whose errors are one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from secateurs import options
from secateurs.cli.options import argparse_type

if TYPE_CHECKING:
    from secateurs.report import Report


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples in descriptions as written and shows defaults (not the empty ones:
    "(default: None)" on an optional flag says nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.required:
            return action.help
        return super()._get_help_string(action)


# the declared options' parsers as argparse types, for commands that build their flags by hand
ratio = argparse_type(options.ratio)
positive_int = argparse_type(options.positive_int)
non_negative_int = argparse_type(options.non_negative_int)


def add_command(
    commands: argparse._SubParsersAction, name: str, summary: str, description: str
) -> argparse.ArgumentParser:
    """A sub-command's parser: ``summary`` in ``secateurs --help``, ``description`` (with its
    examples, kept as written) and every flag's default in ``secateurs NAME --help``."""
    return commands.add_parser(
        name, help=summary, description=description, formatter_class=HelpFormatter
    )


def add_job_command(
    commands: argparse._SubParsersAction,
    name: str,
    summary: str,
    description: str,
    job_type: type,
    runner: Callable[[Any], Report | None],
) -> None:
    """A command that runs a job: its flags built from ``job_type``'s declared options, and
    ``--json``; it prints the report ``runner(job)`` returns."""
    from secateurs.cli.options import add_options, job_from_args

    parser = add_command(commands, name, summary, description)
    add_options(parser, job_type)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def run(args: argparse.Namespace) -> int:
        print_report(runner(job_from_args(job_type, args)), args.json)
        return 0

    parser.set_defaults(run=run)


def print_report(report: Report | None, as_json: bool) -> None:
    """A finished run's report on standard output: JSON, or the markdown table (nothing on the
    ranks of a distributed run other than rank 0, which return no report)."""
    if report is None:
        return
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        from secateurs.report import markdown

        print(markdown(report))
