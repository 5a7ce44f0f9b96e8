"""A training-time pruning run (SPP, SG-CNN, and Campfire next): train the model with the
method's callback, compact what it pruned, check that the compact model computes what the masked
one did, measure both side by side, and write the result with its report.

The method prunes *during* training, so there is no separate one-shot step: the training run
(``train/``, checkpointed every epoch with the method's state; ``--resume`` continues it) both
prunes and retrains.

Output directory: ``config.json``, ``model.safetensors`` + ``manifest.json`` (the compacted
model; its manifest records what to replay on the base architecture, so it reloads from JSON
alone), ``masked/`` (the trained model with pruned weights at zero, before compaction),
``report.json``/``report.md``/``report.png``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from secateurs.data import LabelledData
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.spp.compact import max_relative_difference
from secateurs.pruning.training_time import Compaction, TrainingTimeMethod
from secateurs.report import Cost, Report
from secateurs.runs.data import load_run_data
from secateurs.runs.job import RunJob
from secateurs.runs.measuring import accuracy, timing
from secateurs.runs.options import count, fraction, option, positive
from secateurs.runs.result import assemble_report, finish
from secateurs.runs.run_dir import open_run
from secateurs.runs.training import inherited_recipe, train_model
from secateurs.store import Manifest, load_model, save_model
from secateurs.train.config import TrainConfig

EQUALITY_TOLERANCE = 1e-4  # max relative difference, compacted vs masked model outputs


@dataclass(kw_only=True)
class TrainingJob(RunJob):
    """The options every training-time method shares: data (required), the MACs target, the
    training's length and learning rate."""

    data: str = option(help="data set root (training and test)")
    target_macs: float = fraction(0.5, "keep this fraction of the MACs")
    epochs: int = count(10, "total epochs of training, pruning included")
    lr: float = option(0.01, "peak learning rate (cosine)", parse=float, check=positive)

    def make_method(self, input_size: Sequence[int]) -> TrainingTimeMethod:
        """The method these options describe, for a model taking ``input_size`` inputs."""
        raise NotImplementedError

    def prepare(self, model: nn.Module, data: LabelledData, input_size: Sequence[int]) -> None:
        """Settle what needs the model and data before the method is made (e.g. a scan)."""

    def recipe_settings(self) -> dict[str, Any]:
        """Training settings of the method's own over the inherited recipe (e.g. schedule)."""
        return {}


def run_training_time(kind: str, job: TrainingJob) -> Report | None:
    """Do the whole run; returns the report (also written to ``job.out``). Under ``torchrun``
    every rank trains; rank 0 compacts, measures and writes, the others return None."""
    with open_run(kind, job) as run:
        torch.manual_seed(job.seed)
        original, manifest = load_model(job.model, device=run.device)
        data = load_run_data(job, manifest)
        assert data is not None  # TrainingJob: data is required
        before = accuracy(original, data)
        job.prepare(original, data, manifest.input_size)
        method = job.make_method(manifest.input_size)
        # compaction traces the model after training: a model Torch-Pruning cannot trace fails now
        ChannelGraph(copy.deepcopy(original), manifest.input_size)
        model = copy.deepcopy(original).train()
        callbacks = [method.callback()]
        training = train_model(
            model, data, _recipe(job, manifest), job.out / "train", callbacks=callbacks
        )
        if not run.is_main:
            return None
        masked = copy.deepcopy(model.eval())
        masked_accuracy = accuracy(masked, data)
        save_model(masked, job.out / "masked", replace(manifest, metrics=vars(masked_accuracy)))
        # 0 repeats: layers compacted untimed (rerun with --resume on a quiet machine to time)
        compaction = method.compact(model, manifest.input_size, timing(job))
        record = method.pruning_record(compaction)
        record.details["compacted_vs_masked_max_rel_diff"] = _check_equal(
            model, masked, manifest.input_size, job.seed
        )
        written = method.write_files(job.out)
        if written:
            record.details["files"] = written
        report = assemble_report(
            run,
            (original, model),
            manifest,
            record,
            {"before": before, "masked": masked_accuracy, "after": accuracy(model, data)},
            cost_after=_cost(compaction),
            training_epochs=len(training.history),
            training_seconds=training.seconds,
        )
        pruning = method.manifest_record(manifest.pruning, compaction)
        return finish(run, model, replace(manifest, pruning=pruning), report)


def _recipe(job: TrainingJob, manifest: Manifest) -> TrainConfig:
    """The run's training: the job's epochs and lr, the model's own augmentation and
    regularisation (as fine-tuning in ``secateurs prune``)."""
    return inherited_recipe(
        manifest,
        model=str(job.model),
        data=str(job.data),
        epochs=job.epochs,
        batch_size=job.batch_size,
        lr=job.lr,
        seed=job.seed,
        threads=job.threads,
        **job.recipe_settings(),
    )


def _check_equal(model: nn.Module, masked: nn.Module, input_size, seed: int) -> float:
    """The compacted model computes what the masked one did, or the run stops here."""
    model.eval()
    with torch.no_grad():
        images = torch.randn(8, *input_size, generator=torch.Generator().manual_seed(seed))
        difference = max_relative_difference(model(images), masked(images))
    if not difference <= EQUALITY_TOLERANCE:  # NaN included
        raise AssertionError(f"the compacted model differs from the masked one by {difference}")
    return difference


def _cost(compaction: Compaction) -> Cost | None:
    """The method's own count where it gives one, else the compacted model's."""
    if compaction.macs is None or compaction.params is None:
        return None
    return Cost(compaction.macs, compaction.params)
