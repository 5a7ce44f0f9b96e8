"""A whole SPP run, as ``secateurs spp`` does it: train a saved model with Structured
Probabilistic Pruning, compact what was pruned, check that the compact model computes what the
masked one did, measure both side by side, and write the result with its report.

SPP prunes *during* training, so unlike ``secateurs prune`` there is no separate one-shot step:
the training run (``train/``, checkpointed every epoch with the SPP state, ``--resume`` continues
it) both prunes and retrains. ``oneshot=True`` runs the deterministic baseline at the same
granularity, budget and epochs: the smallest-L1 groups removed before the first iteration.

Output directory: ``model.safetensors`` + ``manifest.json`` (the compacted model; its manifest
records the removed channels and the compact layers' columns, so it reloads from JSON alone),
``masked/`` (the trained model with pruned weights at zero, before compaction),
``report.json``/``report.md``/``report.png``.
"""

from __future__ import annotations

import copy
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.measure import LatencySettings, compare, count_cost
from secateurs.pipeline import FINETUNE_INHERITS, load_job_data, measure_accuracy
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.history import compact_columns_record
from secateurs.pruning.spp.callback import DEFAULT_INTERVAL, SPPCallback
from secateurs.pruning.spp.compact import compact_model, max_relative_difference
from secateurs.pruning.spp.cost import spp_macs
from secateurs.pruning.spp.groups import GRANULARITIES
from secateurs.pruning.spp.schedule import DEFAULT_A, DEFAULT_U
from secateurs.pruning.surgery import remove_channels
from secateurs.report import write_report
from secateurs.store import load_model, save_model
from secateurs.train.config import TrainConfig
from secateurs.train.trainer import CHECKPOINT_FILE, Trainer

log = logging.getLogger(__name__)
EQUALITY_TOLERANCE = 1e-4  # max relative difference, compacted vs masked model outputs


@dataclass
class SPPJob:
    model_dir: Path
    data: str
    out: Path
    granularity: str = "column"
    target_macs: float = 0.5
    epochs: int = 10  # total: the pruning phase and the retraining with fixed masks
    lr: float = 0.01
    batch_size: int = 128
    A: float = DEFAULT_A
    u: float = DEFAULT_U
    interval: int = DEFAULT_INTERVAL
    oneshot: bool = False
    seed: int = 0
    threads: int = 2
    image_size: int | None = None
    latency_batches: tuple[int, ...] = (1, 64)
    # 0: no timing; every column-sparse layer is then compacted untimed. Rerun with resume=True
    # on a quiet machine to redo compaction and timing from the finished training checkpoint.
    latency_repeats: int = 30
    train_subset: int | None = None
    test_subset: int | None = None
    resume: bool = False


def check_job(job: SPPJob) -> None:
    """Reject bad input before anything is written."""
    if job.granularity not in GRANULARITIES:
        raise SecateursError(
            f"unknown SPP granularity {job.granularity!r}; choose one of {', '.join(GRANULARITIES)}"
        )
    if not 0 < job.target_macs < 1:
        raise SecateursError(f"the MACs target must be in (0, 1), not {job.target_macs}")
    if job.epochs < 1:
        raise SecateursError(f"SPP trains: epochs must be at least 1, not {job.epochs}")
    if job.interval < 1 or not 0 < job.A <= 1 or not 0 < job.u < 1:
        raise SecateursError("SPP needs interval >= 1, 0 < A <= 1 and 0 < u < 1")
    if job.out.exists() and not job.out.is_dir():
        raise SecateursError(f"{job.out} is a file; -o takes a directory")
    if job.out.exists() and any(job.out.iterdir()) and not job.resume:
        raise SecateursError(f"{job.out} exists and is not empty; choose another -o (or --resume)")


def train_config(job: SPPJob, manifest) -> TrainConfig:
    """The recipe of the SPP run: the job's epochs and lr, the model's own augmentation and
    regularisation (as fine-tuning in ``secateurs prune``)."""
    recipe = {key: manifest.training[key] for key in FINETUNE_INHERITS if key in manifest.training}
    return TrainConfig(
        model=str(job.model_dir),
        data=str(job.data),
        epochs=job.epochs,
        batch_size=job.batch_size,
        lr=job.lr,
        warmup_epochs=0,
        seed=job.seed,
        threads=job.threads,
        **recipe,
    ).validate()


def compact(
    model: nn.Module,
    callback: SPPCallback,
    keep: dict[str, Tensor] | None,
    input_size,
    settings: LatencySettings,
) -> dict[str, Any]:
    """Compact ``model`` in place; returns the history of removed channels and per-layer
    choices (column and input-channel granularity, whose ``keep`` masks were taken from the
    callback before compaction changed the layers' shapes)."""
    if keep is None:
        graph = ChannelGraph(model, input_size)
        plan = callback.plan()
        history = remove_channels(graph, plan) if plan.removals else []
        return {"history": history, "layers": []}
    outcome = compact_model(model, input_size, keep, settings)
    return {"history": outcome.history, "layers": [vars(c) for c in outcome.layers]}


def spp_cost(masked: nn.Module, compacted: nn.Module, masks: dict[str, Tensor] | None, input_size):
    """MACs and parameters after SPP. Channel granularity (``masks`` None): the compacted
    model's (the pruned channels are physically gone). Column and input-channel granularity: the
    paper's count on the masked model (kept rows and columns only, ``spp_macs``) and only its
    kept weights."""
    if masks is None:
        return count_cost(compacted, input_size)
    params = count_cost(masked, input_size)["params"]
    params -= sum(int((~keep).sum()) for keep in masks.values())
    return {"macs": int(spp_macs(masked, masks, input_size)["macs"]), "params": params}


def run_spp(job: SPPJob) -> dict[str, Any]:
    """Do the whole run; returns the report (also written to ``job.out``)."""
    check_job(job)
    torch.manual_seed(job.seed)
    original, manifest = load_model(job.model_dir)
    train_set, test_set = load_job_data(job, manifest)
    if train_set is None or test_set is None:
        raise SecateursError("SPP trains the model: give --data")
    input_size = manifest.input_size
    accuracy_before = measure_accuracy(original, test_set, manifest)
    cost_before = count_cost(original, input_size)

    callback = SPPCallback(
        job.granularity,
        target_macs=job.target_macs,
        A=job.A,
        u=job.u,
        interval=job.interval,
        seed=job.seed,
        input_size=input_size,
        oneshot=job.oneshot,
    )
    model = copy.deepcopy(original).train()
    # compaction traces the model after training: a model Torch-Pruning cannot trace fails now
    ChannelGraph(copy.deepcopy(original), input_size)
    run_dir = job.out / "train"
    created = not job.out.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        trainer = Trainer(
            model,
            train_set,
            test_set,
            train_config(job, manifest),
            run_dir,
            manifest.mean,
            manifest.std,
            callbacks=[callback],
        )
        trainer.resume()
        history = trainer.fit()
    except SecateursError:
        # refused before any epoch was saved (e.g. a target out of reach): leave no directory
        # that would block the corrected command
        if created and not (run_dir / CHECKPOINT_FILE).exists():
            shutil.rmtree(job.out, ignore_errors=True)
        raise
    if not callback.state.over:
        log.warning(
            "SPP did not reach its target within %d epochs: compacting what it pruned", job.epochs
        )
    model.eval()
    accuracy_masked = measure_accuracy(model, test_set, manifest)
    masked = copy.deepcopy(model)
    save_model(masked, job.out / "masked", replace(manifest, metrics=accuracy_masked))

    settings = LatencySettings(job.latency_batches, job.threads, repeats=job.latency_repeats)
    # Taken now: compaction removes channels whose columns are all gone, and the callback's
    # layers then no longer have the shapes its state describes.
    keep = None if callback.granularity == "channel" else callback.keep_masks()
    compaction = compact(model, callback, keep, input_size, settings)
    model.eval()
    with torch.no_grad():
        images = torch.randn(8, *input_size, generator=torch.Generator().manual_seed(job.seed))
        difference = max_relative_difference(model(images), masked(images))
    if not difference <= EQUALITY_TOLERANCE:  # NaN included
        raise AssertionError(f"the compacted model differs from the masked one by {difference}")
    accuracy_after = measure_accuracy(model, test_set, manifest)

    previous = manifest.pruning or {}
    record = {
        "method": "spp-oneshot" if job.oneshot else "spp",
        "granularity": job.granularity,
        "rounds": [*previous.get("rounds", []), compaction["history"]],
        "compact_columns": compact_columns_record(model),
        "spp": callback.record(),
        "layers": compaction["layers"],
    }
    cost_after = spp_cost(masked, model, keep, input_size)
    report = measure(job, original, model, manifest, cost_before, cost_after)
    report.update(
        top1_before=accuracy_before.get("top1"),
        top5_before=accuracy_before.get("top5"),
        top1_oneshot=None,
        top1_masked=accuracy_masked.get("top1"),
        top1_after=accuracy_after.get("top1"),
        top5_after=accuracy_after.get("top5"),
        test_images=accuracy_after.get("n"),
        pruning_seconds=round(sum(r["epoch_seconds"] for r in history), 1),
        finetune_epochs=len(history),
        granularity=job.granularity,
        selection="deterministic one-shot" if job.oneshot else "probabilistic (SPP)",
        spp=callback.record(),
        compact_layers=compaction["layers"],
        compacted_vs_masked_max_rel_diff=difference,
    )
    pruned_manifest = replace(
        manifest,
        pruning=record,
        metrics={key: report[key] for key in ("top1_after", "top5_after", "macs_after")},
    )
    save_model(model, job.out, pruned_manifest)
    write_report(report, job.out)
    return report


def measure(job, original, model, manifest, cost_before, cost_after) -> dict[str, Any]:
    """MACs and parameters as the paper counts them (kept columns), latency measured
    interleaved: dense original against the compacted model."""
    input_size = manifest.input_size
    settings = LatencySettings(job.latency_batches, job.threads, repeats=job.latency_repeats)
    timings = (
        compare([original.eval(), model.eval()], input_size, settings) if settings.repeats else {}
    )
    reduction = cost_before["macs"] / cost_after["macs"]
    latency = {
        str(batch): {
            "before_ms": round(rows[0]["median"], 4),
            "after_ms": round(rows[1]["median"], 4),
            "speedup": round(rows[1]["ratio"], 4),
            "realisation": round(rows[1]["ratio"] / reduction, 4),
        }
        for batch, rows in timings.items()
    }
    return {
        "model": manifest.architecture,
        "model_dir": str(job.model_dir),
        "method": "spp-oneshot" if job.oneshot else "spp",
        "target_kind": "macs",
        "target_ratio": job.target_macs,
        "achieved_ratio": round(cost_after["macs"] / cost_before["macs"], 5),
        "macs_before": cost_before["macs"],
        "macs_after": cost_after["macs"],
        "params_before": cost_before["params"],
        "params_after": cost_after["params"],
        "latency": latency,
        "latency_threads": job.threads,
    }
