"""One command per registered training-time method (``secateurs spp``, ``sgcnn``,
``campfire``, ``taylor-gradual``, and any method registered before the parser is built): the
flags every training-time run shares (:class:`~secateurs.runs.training_time_run.TrainingJob`)
and the method's own (its ``Options``), its ``description`` as the command's help."""

from __future__ import annotations

import argparse

from secateurs.cli.options import add_options, job_from_args
from secateurs.cli.parser import add_command, print_report
from secateurs.pruning.training_time import (
    TrainingTimeMethod,
    training_time_method,
    training_time_methods,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    for name in training_time_methods():
        _add_method(commands, training_time_method(name))


def _add_method(commands: argparse._SubParsersAction, method: type[TrainingTimeMethod]) -> None:
    from secateurs.runs.training_time_run import TrainingJob

    title = method.summary.split(";")[0].split(",")[0]
    parser = add_command(
        commands, method.name, f"prune during training: {title}", method.description
    )
    add_options(parser, TrainingJob)
    add_options(parser, method.Options)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def run(args: argparse.Namespace) -> int:
        from secateurs.runs.training_time_run import run_training_time

        options = job_from_args(method.Options, args)
        job = job_from_args(TrainingJob, args, method=method.name, options=options)
        print_report(run_training_time(job), args.json)
        return 0

    parser.set_defaults(run=run)
