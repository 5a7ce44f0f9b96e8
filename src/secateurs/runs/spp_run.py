"""A whole SPP run, as ``secateurs spp`` does it: train a saved model with Structured
Probabilistic Pruning, compact what was pruned, check that the compact model computes what the
masked one did, measure both side by side, and write the result with its report.

SPP prunes *during* training, so there is no separate one-shot step: the training run
(``train/``, checkpointed every epoch with the SPP state; ``--resume`` continues it) both prunes
and retrains. ``oneshot=True`` runs the deterministic baseline at the same granularity, budget
and epochs: the smallest-L1 groups removed before the first iteration.

Output directory: ``config.json``, ``model.safetensors`` + ``manifest.json`` (the compacted
model; its manifest records the removed channels and the compact layers' columns, so it reloads
from JSON alone), ``masked/`` (the trained model with pruned weights at zero, before
compaction), ``report.json``/``report.md``/``report.png``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import replace

import torch
from torch import nn

from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.spp.compact import max_relative_difference
from secateurs.pruning.spp.method import SPPMethod
from secateurs.pruning.training_time import Compaction
from secateurs.report import Cost, PruningRecord, Report
from secateurs.runs.data import load_run_data
from secateurs.runs.measuring import accuracy, timing
from secateurs.runs.result import assemble_report, finish
from secateurs.runs.run_dir import open_run
from secateurs.runs.spp_job import SPPJob
from secateurs.runs.training import inherited_recipe, train_model
from secateurs.store import Manifest, load_model, save_model

log = logging.getLogger(__name__)
EQUALITY_TOLERANCE = 1e-4  # max relative difference, compacted vs masked model outputs


def run_spp(job: SPPJob) -> Report | None:
    """Do the whole run; returns the report (also written to ``job.out``). Under ``torchrun``
    every rank trains; rank 0 compacts, measures and writes, the others return None."""
    with open_run("spp", job) as run:
        torch.manual_seed(job.seed)
        original, manifest = load_model(job.model)
        data = load_run_data(job, manifest)
        assert data is not None  # SPPJob.check: SPP needs data
        before = accuracy(original, data)
        method = _method(job, manifest)
        # compaction traces the model after training: a model Torch-Pruning cannot trace fails now
        ChannelGraph(copy.deepcopy(original), manifest.input_size)
        model = copy.deepcopy(original).train()
        recipe = _recipe(job, manifest)
        callbacks = [method.callback()]
        training = train_model(model, data, recipe, job.out / "train", callbacks=callbacks)
        if not run.is_main:
            return None
        masked = copy.deepcopy(model.eval())
        masked_accuracy = accuracy(masked, data)
        save_model(masked, job.out / "masked", replace(manifest, metrics=vars(masked_accuracy)))
        # 0 repeats: every column-sparse layer compacted untimed (rerun with --resume to time)
        compaction = method.compact(model, manifest.input_size, timing(job))
        difference = _check_equal(model, masked, manifest.input_size, job.seed)
        report = assemble_report(
            run,
            (original, model),
            manifest,
            _record(job, method, compaction, difference),
            {"before": before, "masked": masked_accuracy, "after": accuracy(model, data)},
            cost_after=_cost(compaction),
            training_epochs=len(training.history),
            training_seconds=training.seconds,
        )
        record = _manifest_record(job, manifest, method, compaction)
        return finish(run, model, replace(manifest, pruning=record), report)


def _method(job: SPPJob, manifest: Manifest) -> SPPMethod:
    return SPPMethod(
        job.granularity,
        manifest.input_size,
        target_macs=job.target_macs,
        A=job.A,
        u=job.u,
        interval=job.interval,
        seed=job.seed,
        oneshot=job.oneshot,
    )


def _recipe(job: SPPJob, manifest: Manifest):
    """The SPP run's training: the job's epochs and lr, the model's own augmentation and
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


def _name(job: SPPJob) -> str:
    return "spp-oneshot" if job.oneshot else "spp"


def _record(
    job: SPPJob, method: SPPMethod, compaction: Compaction, difference: float
) -> PruningRecord:
    callback = method.callback()
    if not callback.state.over:
        log.warning(
            "SPP did not reach its target within %d epochs: compacted what it pruned", job.epochs
        )
    return PruningRecord(
        method=_name(job),
        target_ratio=job.target_macs,
        method_params={"A": job.A, "u": job.u, "interval": job.interval, "seed": job.seed},
        selection="deterministic one-shot" if job.oneshot else "probabilistic (SPP)",
        granularity=job.granularity,
        details={
            "spp": callback.record(),
            "compact_layers": compaction.layers,
            "compacted_vs_masked_max_rel_diff": difference,
        },
    )


def _manifest_record(
    job: SPPJob, manifest: Manifest, method: SPPMethod, compaction: Compaction
) -> dict:
    """The manifest's pruning entry: what to replay on the base architecture to reload it."""
    previous = manifest.pruning or {}
    return {
        "method": _name(job),
        "granularity": job.granularity,
        "rounds": [*previous.get("rounds", []), compaction.history],
        "compact_columns": compaction.record.get("compact_columns", {}),
        "spp": method.callback().record(),
        "layers": compaction.layers,
    }


def _cost(compaction: Compaction) -> Cost | None:
    """The paper's count (kept columns) where the method gives one, else the compacted model's."""
    if compaction.macs is None or compaction.params is None:
        return None
    return Cost(compaction.macs, compaction.params)
