"""``secateurs sgcnn``: a training-time run (:mod:`.training_time_run`) with self-grouping
convolution (SG-CNN)."""

from __future__ import annotations

from secateurs.report import Report
from secateurs.runs.sgcnn_job import SGCNNJob
from secateurs.runs.training_time_run import run_training_time


def run_sgcnn(job: SGCNNJob) -> Report | None:
    """Do the whole run; returns the report (also written to ``job.out``)."""
    return run_training_time("sgcnn", job)
