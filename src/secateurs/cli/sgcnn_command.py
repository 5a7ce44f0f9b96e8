"""``secateurs sgcnn``: prune a saved model during training with self-grouping convolution,
run its grouped layers as diverse group convolutions, and report before and after. Its options
are declared once, in :class:`~secateurs.runs.sgcnn_job.SGCNNJob`."""

from __future__ import annotations

import argparse

from secateurs.cli.parser import add_job_command
from secateurs.report import Report
from secateurs.runs.sgcnn_job import SGCNNJob

DESCRIPTION = """Train a saved model with SG-CNN (Guo et al., Neural Networks 2020): in stages of
rising connection sparsity (10%, 20%, ... up to what the MACs target needs), each convolution's
filters are clustered by the input channels they read (k-means), and each group keeps the inputs
its centroid ranks highest. Afterwards, input channels no group reads are removed, and each
grouped layer runs as one grouped convolution over gathered inputs, one convolution per group,
or stays dense: whichever was measured fastest. Writes the model with report.json, report.md
and report.png to OUT.

examples:
  secateurs sgcnn runs/r20/model --data ../shared/data/cifar10 --target-macs 0.5 --epochs 10 \\
      -o runs/r20-sgcnn
  secateurs sgcnn runs/r20/model --data ../shared/data/cifar10 --scheme G --groups 8 -o runs/g8
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    add_job_command(
        commands, "sgcnn", "prune during training (SG-CNN)", DESCRIPTION, SGCNNJob, _run
    )


def _run(job: SGCNNJob) -> Report | None:
    from secateurs.runs.sgcnn_run import run_sgcnn

    return run_sgcnn(job)
