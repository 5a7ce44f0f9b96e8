"""Fine-tuning a pruned model, as ``secateurs prune`` does after pruning (and between steps) and
as ``secateurs.fine_tune`` does in Python: the model's own training recipe (augmentation and
regularisation) inherited, no warm-up, cosine from the fine-tuning's learning rate, optionally
distilled from the unpruned model."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from secateurs.data import LabelledData
from secateurs.options import count, option, positive
from secateurs.runs.job import RunJob
from secateurs.runs.training import Training, inherited_recipe, train_model
from secateurs.store import Manifest
from secateurs.train.distributed import DistributedContext


def _distill_weight(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"takes a weight in [0, 1], not {value}"


@dataclass(kw_only=True)
class FineTuning:
    """The fine-tuning options, declared once (``secateurs prune``'s, ``secateurs.fine_tune``'s)."""

    finetune_epochs: int = count(0, "epochs of fine-tuning after pruning (needs --data)", least=0)
    finetune_lr: float = option(
        0.01,
        "peak learning rate of the fine-tuning (cosine, no warm-up)",
        parse=float,
        check=positive,
    )
    distill: float = option(
        0.0,
        help="fine-tune with the unpruned model as teacher: WEIGHT on its soft targets, "
        "1 - WEIGHT on the labels (temperature 4; 0 = off)",
        parse=float,
        metavar="WEIGHT",
        check=_distill_weight,
    )


@dataclass(kw_only=True)
class FineTuneJob(FineTuning, RunJob):
    """Fine-tuning alone (the Python API's ``fine_tune``): the run's shared options and the
    fine-tuning's."""


def fine_tune(
    job: RunJob,
    model: nn.Module,
    manifest: Manifest,
    data: LabelledData,
    directory: Path,
    *,
    epochs: int,
    teacher: nn.Module | None = None,
    context: DistributedContext | None = None,
) -> Training:
    """Fine-tune ``model`` in place for ``epochs`` with ``job``'s fine-tuning options (``job``
    is a :class:`FineTuning` run), checkpointing into ``directory`` (resumed if a checkpoint is
    there); with ``job.distill``, a copy of ``teacher`` teaches it."""
    assert isinstance(job, FineTuning)
    distilled = bool(job.distill) and teacher is not None
    recipe = inherited_recipe(
        manifest,
        model=str(job.model),
        data=str(job.data),
        epochs=epochs,
        batch_size=job.batch_size,
        lr=job.finetune_lr,
        seed=job.seed,
        threads=job.threads,
        **({"teacher": [str(job.model)], "distill_weight": job.distill} if distilled else {}),
    )
    copied = copy.deepcopy(teacher) if distilled else None
    training = train_model(model.train(), data, recipe, directory, teacher=copied, context=context)
    model.eval()
    return training
