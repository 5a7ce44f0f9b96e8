"""``secateurs prune``: prune a saved model, fine-tune it, and report before and after. Its
options are declared once, in :class:`~secateurs.runs.prune_job.PruneJob`."""

from __future__ import annotations

import argparse

from secateurs.cli.parser import add_job_command
from secateurs.report import Report
from secateurs.runs.prune_job import PruneJob

DESCRIPTION = """Prune a saved model to a MACs or parameter target, fine-tune, and write the pruned
model with report.json, report.md and report.png to OUT.

examples:
  secateurs prune runs/r20/model --method l1 --target-macs 0.5 -o runs/r20-l1
  secateurs prune runs/r20/model --method taylor --target-macs 0.5 --data ../shared/data/cifar10 \\
      --finetune-epochs 10 -o runs/r20-taylor
  secateurs prune runs/r20/model --method l1 --layer-ratios layer1.0.conv1=0.5 -o runs/r20-one
  torchrun --nproc_per_node 2 -m secateurs prune runs/r20/model --method l1 \\
      --data ../shared/data/cifar10 --finetune-epochs 10 -o runs/r20-l1-ddp
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    add_job_command(commands, "prune", "prune a model", DESCRIPTION, PruneJob, _run)


def _run(job: PruneJob) -> Report | None:
    from secateurs.runs.prune_run import run_prune

    return run_prune(job)
