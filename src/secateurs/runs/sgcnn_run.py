"""``secateurs sgcnn``: a training-time run (:mod:`.training_time_run`) with self-grouping
convolution (SG-CNN)."""

from __future__ import annotations

from secateurs.pruning.sgcnn.callback import SGCNNSettings
from secateurs.pruning.sgcnn.method import SGCNNMethod
from secateurs.report import Report
from secateurs.runs.sgcnn_job import SGCNNJob
from secateurs.runs.training_time_run import run_training_time
from secateurs.store import Manifest


def run_sgcnn(job: SGCNNJob) -> Report | None:
    """Do the whole run; returns the report (also written to ``job.out``)."""

    def method(manifest: Manifest) -> SGCNNMethod:
        settings = SGCNNSettings(
            target_macs=job.target_macs,
            groups=job.groups,
            scheme=job.scheme,
            step=job.step,
            stage_epochs=job.stage_epochs,
            epochs=job.epochs,
            seed=job.seed,
        )
        return SGCNNMethod(settings, manifest.input_size)

    return run_training_time("sgcnn", job, method)
