"""``secateurs campfire``: structured sparse training with Campfire, compaction, and a report
before and after. Its options are declared once, in
:class:`~secateurs.runs.campfire_job.CampfireJob`."""

from __future__ import annotations

import argparse

from secateurs.cli.parser import add_job_command
from secateurs.report import Report
from secateurs.runs.campfire_job import CampfireJob

DESCRIPTION = """Train a saved model with Campfire (Gamboa et al. 2020): magnitude masks inside
every kernel (window), per filter (kernel) or of whole filters, raised on the AGP cubic ramp from
--prune-start to --prune-end, then frozen while training continues sparse; no regularisation.
Compacts the result (filters removed; kernel-level layers as gathered group convolutions where
measured faster; window layers kept dense, packed in window.safetensors, their sparse path timed)
and writes the model with report.json, report.md and report.png to OUT.

examples:
  secateurs campfire runs/r20/model --data ../shared/data/cifar10 --granularity window \\
      --sparsity 0.7 --epochs 10 -o runs/r20-campfire-w70
  secateurs campfire runs/r20/model --data ../shared/data/cifar10 --granularity kernel \\
      --target-macs 0.5 -o runs/r20-campfire-k
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    add_job_command(
        commands,
        "campfire",
        "structured sparse training (Campfire)",
        DESCRIPTION,
        CampfireJob,
        _run,
    )


def _run(job: CampfireJob) -> Report | None:
    from secateurs.runs.campfire_run import run_campfire

    return run_campfire(job)
