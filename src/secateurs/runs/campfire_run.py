"""``secateurs campfire``: a training-time run (:mod:`.training_time_run`) with Campfire's
gradual structured sparsity."""

from __future__ import annotations

from secateurs.report import Report
from secateurs.runs.campfire_job import CampfireJob
from secateurs.runs.training_time_run import run_training_time


def run_campfire(job: CampfireJob) -> Report | None:
    """Do the whole run; returns the report (also written to ``job.out``)."""
    return run_training_time("campfire", job)
