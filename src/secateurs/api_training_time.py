"""The Python API of the training-time methods (SPP, SG-CNN, Campfire, gradual Taylor, and any
registered one): prune a model in memory while it trains, then compact it, as ``secateurs
NAME`` does for a saved model. It builds the command's job
(:class:`~secateurs.runs.training_time_run.TrainingJob`), runs its checks, and runs the same
core (:func:`~secateurs.runs.training_time_run.train_and_compact`): same recipe, same
preparation (e.g. SPP's sensitivity scan), same timed compaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.api import IN_MEMORY, Pruned, _custom_manifest, _directory, _job, _split
from secateurs.data import LabelledData
from secateurs.errors import SecateursError
from secateurs.measurement import count_cost
from secateurs.runs.torch_state import preserved_torch_state
from secateurs.store import Manifest


def prune_while_training(
    model: nn.Module,
    data: LabelledData,
    *,
    method: str,
    example_input: torch.Tensor,
    epochs: int,
    manifest: Manifest | None = None,
    run_dir: str | Path | None = None,
    **options: Any,
) -> Pruned:
    """A copy of ``model`` trained for ``epochs`` with the training-time ``method`` pruning it,
    then compacted (:class:`Pruned`; :func:`secateurs.save` stores it as JSON + safetensors).
    ``options``: the method's own (its command's flags by their Python names, e.g.
    ``granularity="window"``, ``groups=8``) and the run's (``target_macs``, ``lr``,
    ``batch_size``, ``seed``, ``threads``, ``latency_repeats``: 0 compacts untimed).
    ``manifest``: the model's (``secateurs.load``'s second value), whose training recipe the
    run inherits, as the command does. ``run_dir`` keeps the checkpoints (resumed if present).
    Torch's global seed, thread count and determinism are put back afterwards."""
    from secateurs.pruning.training_time import training_time_method
    from secateurs.runs.training_time_run import TrainingJob, method_options, train_and_compact

    training_time_method(method)  # an unknown name: the registry's one-line error
    shared, own = _split(TrainingJob, options)
    job: TrainingJob = _job(
        TrainingJob,
        out=IN_MEMORY if run_dir is None else Path(run_dir),
        data=str(IN_MEMORY),
        epochs=epochs,
        method=method,
        options=method_options(method, own),
        **shared,
    )
    base = _custom_manifest(model, None, example_input)
    if manifest is not None:
        base = manifest
        if tuple(manifest.input_size) != tuple(example_input.shape[1:]):
            raise SecateursError(
                f"example_input is {tuple(example_input.shape[1:])}, the manifest's model "
                f"takes {tuple(manifest.input_size)}"
            )
    with preserved_torch_state(), _directory(run_dir, "secateurs-train-prune-") as directory:
        torch.manual_seed(job.seed)
        done = train_and_compact(job, model, base, data, directory, every_rank=True)
    assert done is not None  # every rank compacts its own copy
    input_size = tuple(example_input.shape[1:])
    after = done.compaction.macs or count_cost(done.model, input_size)["macs"]
    achieved = after / count_cost(model, input_size)["macs"]
    if done.record.target_kind == "latency":  # the measured latency ratio (gradual Taylor)
        achieved = done.record.achieved_ratio
    record = done.method.manifest_record(None, done.compaction)
    return Pruned(done.model, achieved, record, input_size)
