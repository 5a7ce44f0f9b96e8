"""The Python API of the training-time methods (SPP, SG-CNN, Campfire, gradual Taylor): prune a
model in memory while it trains, then compact it, as ``secateurs spp|sgcnn|campfire|
taylor-gradual`` do for a saved model. The method's options are the command's, by their Python
names (``granularity="window"``, ``sparsity=0.7``, ``groups=8``, ...), declared once on the
command's job."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.api import Pruned
from secateurs.data import LabelledData
from secateurs.errors import SecateursError
from secateurs.measure import LatencySettings, count_cost
from secateurs.runs.training import inherited_recipe, train_model
from secateurs.runs.training_time_run import TrainingJob
from secateurs.store import Manifest


def _jobs() -> dict[str, type[TrainingJob]]:
    from secateurs.runs.campfire_job import CampfireJob
    from secateurs.runs.sgcnn_job import SGCNNJob
    from secateurs.runs.spp_job import SPPJob
    from secateurs.runs.taylor_gradual_job import TaylorGradualJob

    return {
        "spp": SPPJob,
        "sgcnn": SGCNNJob,
        "campfire": CampfireJob,
        "taylor-gradual": TaylorGradualJob,
    }


def prune_while_training(
    model: nn.Module,
    data: LabelledData,
    *,
    method: str,
    example_input: torch.Tensor,
    epochs: int,
    lr: float = 0.01,
    run_dir: str | Path | None = None,
    **options: Any,
) -> Pruned:
    """A copy of ``model`` trained for ``epochs`` with the training-time ``method`` pruning it,
    then compacted (:class:`Pruned`; :func:`secateurs.save` stores it as JSON + safetensors).
    ``options``: the method's (as its command's flags) and ``batch_size``, ``seed``,
    ``threads``, ``target_macs``. ``run_dir`` keeps the checkpoints (resumed if present)."""
    jobs = _jobs()
    if method not in jobs:
        raise SecateursError(f"training-time methods are {', '.join(jobs)}, not {method!r}")
    try:
        job = jobs[method](
            model=Path("(in memory)"), out=Path("(in memory)"), data="(in memory)",
            epochs=epochs, lr=lr, latency_repeats=0, **options,
        )  # fmt: skip
    except TypeError as error:
        raise SecateursError(f"bad option for {method}: {error}") from None
    input_size = tuple(example_input.shape[1:])
    pruning = job.make_method(input_size)
    trained = copy.deepcopy(model).train()
    recipe = inherited_recipe(
        Manifest("custom", {}, [], [], [], []),
        model="(a model in memory)", data="(data in memory)", epochs=epochs, lr=lr,
        batch_size=job.batch_size, seed=job.seed, threads=job.threads, label_smoothing=0.0,
        **job.recipe_settings(),
    )  # fmt: skip
    callbacks = [pruning.callback()]
    if run_dir is not None:
        train_model(trained, data, recipe, Path(run_dir), callbacks=callbacks)
    else:
        with tempfile.TemporaryDirectory(prefix="secateurs-train-prune-") as directory:
            train_model(trained, data, recipe, Path(directory), callbacks=callbacks)
    trained.eval()
    compaction = pruning.compact(trained, input_size, LatencySettings(repeats=0))
    after = compaction.macs or count_cost(trained, input_size)["macs"]
    achieved = after / count_cost(model, input_size)["macs"]
    return Pruned(trained, achieved, pruning.manifest_record(None, compaction), input_size)
