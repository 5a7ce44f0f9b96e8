"""The demo: train a CIFAR-style ResNet-20 on scikit-learn's bundled digits (no download), scaled
up to 32x32 (at 8x8 a CNN's latency is its per-operator overhead, which pruning cannot remove),
prune it with two methods the way the product does by default (widths onnxruntime runs
efficiently), fine-tune briefly, and print accuracy, MACs, parameters and latency before and
after as one table."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

from secateurs.errors import SecateursError
from secateurs.report import Report
from secateurs.runs.prune_job import PruneJob
from secateurs.runs.prune_run import run_prune
from secateurs.runs.train_run import CONFIG_FILE, read_run_config, run_training
from secateurs.train.config import TrainConfig
from secateurs.train.trainer import CHECKPOINT_FILE

log = logging.getLogger(__name__)
DEMO_METHODS = ("l1", "taylor")
DEMO_IMAGE_SIZE = 32
DEMO_TARGET_MACS = 0.25


def demo_config(epochs: int) -> TrainConfig:
    # digits scaled from 8x8 to 32x32: a 4-pixel (one source pixel) shift, no flips (a mirrored
    # digit is another glyph)
    return TrainConfig(
        model="resnet20",
        data="digits",
        image_size=DEMO_IMAGE_SIZE,
        epochs=epochs,
        batch_size=64,
        lr=0.05,
        padding=4,
        flip=False,
        warmup_epochs=1,
        label_smoothing=0.0,
    )


def run_demo(out: str | Path, epochs: int = 15, finetune_epochs: int = 6) -> list[Report]:
    """Train, prune with each demo method, print the table; returns one report per method."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SecateursError(f"{out} is a file; --out takes a directory")
    log.info("training resnet20 on the digits set for %d epochs", epochs)
    started = (out / "train" / CHECKPOINT_FILE).exists()
    if started and (out / "train" / CONFIG_FILE).exists():
        trained_for = read_run_config(out / "train").epochs
        if trained_for != epochs:
            log.warning(
                "%s holds a demo trained for %d epochs: reusing it (another --out trains %d)",
                out,
                trained_for,
                epochs,
            )
    run_training(demo_config(epochs), out / "train", resume=started)
    reports = []
    for method in DEMO_METHODS:
        log.info(
            "pruning with %s to %d%% of the MACs, then %d epochs of fine-tuning",
            method,
            round(100 * DEMO_TARGET_MACS),
            finetune_epochs,
        )
        job = PruneJob(
            model=out / "train" / "model",
            method=method,
            out=out / f"pruned-{method}",
            target_macs=DEMO_TARGET_MACS,
            data="digits",
            finetune_epochs=finetune_epochs,
            batch_size=64,
            finetune_lr=0.01,
            latency_repeats=20,
            resume=(out / f"pruned-{method}").exists(),
        )
        report = run_prune(job)
        assert report is not None  # the demo is not distributed
        reports.append(report)
    Console().print(demo_table(reports))
    log.info("reports and plots: %s/pruned-*/report.{md,png}", out)
    return reports


def demo_table(reports: list[Report]) -> Table:
    """One row for the dense model and one per method: top-1, cost, and latency at batch 64 in
    PyTorch eager and in onnxruntime. Each run timed its own dense and pruned models interleaved,
    so a row shows that run's before -> after milliseconds beside the speed-up of the same
    measurement (the dense model's time differs between runs on a busy machine)."""
    first = reports[0]
    threads = first.settings.latency_threads
    table = Table(
        title=f"secateurs demo: resnet20 on digits ({DEMO_IMAGE_SIZE}x{DEMO_IMAGE_SIZE}), pruned "
        f"to {round(100 * DEMO_TARGET_MACS)}% of MACs at widths onnxruntime runs efficiently",
        caption=f"latency: batch 64 (and 1), {threads} threads, dense and pruned timed "
        "interleaved in each run; speed-up = before / after of that same measurement",
    )
    for column in (
        "model",
        "top-1 %",
        "MACs (M)",
        "params (K)",
        "eager b64 before -> after (ms)",
        "speed-up",
        "onnxruntime b64 before -> after (ms)",
        "speed-up",
        "onnxruntime b1 speed-up",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        "dense",
        f"{first.top1('before'):.2f}",
        f"{first.cost_before.macs / 1e6:.2f}",
        f"{first.cost_before.params / 1e3:.1f}",
        "-",
        "1.00x",
        "-",
        "1.00x",
        "1.00x",
    )
    for report in reports:
        table.add_row(
            report.pruning.method,
            f"{report.top1('after'):.2f}",
            f"{report.cost_after.macs / 1e6:.2f}",
            f"{report.cost_after.params / 1e3:.1f}",
            *_latency(report, "eager"),
            *_latency(report, "onnxruntime"),
            _latency(report, "onnxruntime", "1")[1],
        )
    return table


def _latency(report: Report, backend: str, batch: str = "64") -> tuple[str, str]:
    """A batch size's before -> after milliseconds and the speed-up, from one measurement."""
    entry = report.latency.get(backend, {}).get(batch)
    if entry is None:
        return "-", "-"
    return f"{entry.before_ms:.2f} -> {entry.after_ms:.2f}", f"{entry.speedup:.2f}x"
