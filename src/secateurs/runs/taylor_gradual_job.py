"""The options of a gradual Taylor run, declared once; the run is the shared training-time run
(:func:`run_taylor_gradual`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from secateurs.pruning.taylor_gradual import DEFAULT_INTERVAL, DEFAULT_MOMENTUM, GradualSchedule
from secateurs.pruning.taylor_gradual_method import GradualTaylorMethod
from secateurs.report import Report
from secateurs.runs.options import count, option
from secateurs.runs.training_time_run import TrainingJob, run_training_time


@dataclass(kw_only=True)
class TaylorGradualJob(TrainingJob):
    """Train a saved model while removing its lowest-Taylor channels a few at a time."""

    interval: int = count(DEFAULT_INTERVAL, "iterations between pruning steps")
    momentum: float = option(
        DEFAULT_MOMENTUM,
        help="smoothing of the scores across pruning steps",
        parse=float,
        check=lambda v: None if 0 <= v < 1 else f"must be in [0, 1), not {v}",
    )
    per_step: int | None = count(
        None,
        "channels removed per step (default: 0.5%% of the prunable channels, more if the "
        "run is too short to reach the target in its first half)",
    )
    min_channels: int = count(1, "never keep fewer channels than this in a group")

    def make_method(self, input_size: Sequence[int]) -> GradualTaylorMethod:
        schedule = GradualSchedule(
            self.target_macs, self.interval, self.momentum, self.per_step, self.min_channels
        )
        return GradualTaylorMethod(schedule, input_size, self.epochs)


def run_taylor_gradual(job: TaylorGradualJob) -> Report | None:
    """Do the whole run; returns the report (also written to ``job.out``)."""
    return run_training_time("taylor-gradual", job)
