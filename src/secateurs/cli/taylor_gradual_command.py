"""``secateurs taylor-gradual``: Taylor pruning on the paper's gradual schedule, while training.
Its options are declared once, in :class:`~secateurs.runs.taylor_gradual_job.TaylorGradualJob`."""

from __future__ import annotations

import argparse

from secateurs.cli.parser import add_job_command
from secateurs.report import Report
from secateurs.runs.taylor_gradual_job import TaylorGradualJob

DESCRIPTION = """Train a saved model while pruning it with first-order Taylor scores as Molchanov
et al. (CVPR 2019) do: (gate x dL/dgate)^2 of a gate after each BatchNorm, averaged over
--interval iterations, divided by the number of layers sharing a channel, smoothed across steps
with --momentum; every --interval iterations the lowest channels go (--per-step), until the
MACs target; then training goes on with the smaller network. Slower than `secateurs prune
--method taylor`, which scores once and can leave a layer with one or two channels.

example:
  secateurs taylor-gradual runs/vgg/model --data ../shared/data/cifar10 --target-macs 0.25 \\
      --epochs 10 -o runs/vgg-taylor-gradual
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    add_job_command(
        commands,
        "taylor-gradual",
        "prune during training (gradual Taylor)",
        DESCRIPTION,
        TaylorGradualJob,
        _run,
    )


def _run(job: TaylorGradualJob) -> Report | None:
    from secateurs.runs.taylor_gradual_job import run_taylor_gradual

    return run_taylor_gradual(job)
