"""``secateurs spp``: prune a saved model during training with Structured Probabilistic Pruning,
compact it, and report before and after. Its options are declared once, in
:class:`~secateurs.runs.spp_job.SPPJob`."""

from __future__ import annotations

import argparse

from secateurs.cli.parser import add_job_command
from secateurs.report import Report
from secateurs.runs.spp_job import SPPJob

DESCRIPTION = """Train a saved model with SPP (Wang et al., BMVC 2018): per-group pruning
probabilities, a Monte Carlo mask every iteration, groups pruned for good at probability 1, then
retraining with the fixed mask. Compacts the result (dead channels removed, column-sparse layers
run as compact convolutions where measured faster) and writes the model with report.json,
report.md and report.png to OUT.

examples:
  secateurs spp runs/r20/model --data ../shared/data/cifar10 --target-macs 0.5 --epochs 10 \\
      -o runs/r20-spp
  secateurs spp runs/r20/model --data ../shared/data/cifar10 --granularity channel -o runs/r20-sppc
  secateurs spp runs/r20/model --data ../shared/data/cifar10 --oneshot -o runs/r20-l1-columns
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    add_job_command(commands, "spp", "prune during training (SPP)", DESCRIPTION, SPPJob, _run)


def _run(job: SPPJob) -> Report | None:
    from secateurs.runs.spp_run import run_spp

    return run_spp(job)
