"""``secateurs spp``: a training-time run (:mod:`.training_time_run`) with Structured
Probabilistic Pruning. ``oneshot=True`` runs the deterministic baseline at the same granularity,
budget and epochs: the smallest-L1 groups removed before the first iteration."""

from __future__ import annotations

from secateurs.report import Report
from secateurs.runs.spp_job import SPPJob
from secateurs.runs.training_time_run import run_training_time


def run_spp(job: SPPJob) -> Report | None:
    """Do the whole run; returns the report (also written to ``job.out``)."""
    return run_training_time("spp", job)
