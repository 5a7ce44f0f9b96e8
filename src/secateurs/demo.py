"""The demo: train a CIFAR-style ResNet-20 on scikit-learn's bundled digits (8x8, no download),
prune it to half its MACs with two methods, fine-tune briefly, and print accuracy, MACs,
parameters and latency before and after as one table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from secateurs.errors import SecateursError
from secateurs.pipeline import PruneJob, run_prune
from secateurs.train.config import TrainConfig
from secateurs.train.run import CONFIG_FILE, read_run_config, run_training
from secateurs.train.trainer import CHECKPOINT_FILE

log = logging.getLogger(__name__)
DEMO_METHODS = ("l1", "taylor")


def demo_config(epochs: int) -> TrainConfig:
    # digits are 8x8: a 1-pixel shift, no flips (a mirrored digit is another glyph)
    return TrainConfig(
        model="resnet20",
        data="digits",
        epochs=epochs,
        batch_size=64,
        lr=0.05,
        padding=1,
        flip=False,
        warmup_epochs=1,
        label_smoothing=0.0,
    )


def run_demo(out: str | Path, epochs: int = 15, finetune_epochs: int = 3) -> list[dict[str, Any]]:
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
            "pruning with %s to 50%% of the MACs, then %d epochs of fine-tuning",
            method,
            finetune_epochs,
        )
        job = PruneJob(
            model_dir=out / "train" / "model",
            method=method,
            out=out / f"pruned-{method}",
            target_ratio=0.5,
            data="digits",
            finetune_epochs=finetune_epochs,
            batch_size=64,
            finetune_lr=0.01,
            latency_repeats=20,
            resume=(out / f"pruned-{method}").exists(),
        )
        reports.append(run_prune(job))
    Console().print(demo_table(reports))
    log.info("reports and plots: %s/pruned-*/report.{md,png}", out)
    return reports


def demo_table(reports: list[dict[str, Any]]) -> Table:
    table = Table(title="secateurs demo: resnet20 on digits (8x8), pruned to 50% of MACs")
    for column in (
        "model",
        "top-1 %",
        "MACs (M)",
        "params (K)",
        "batch 1 (ms)",
        "batch 64 (ms)",
        "speed-up b64",
    ):
        table.add_column(column, justify="right")
    first = reports[0]
    table.add_row(
        "dense",
        f"{first['top1_before']:.2f}",
        f"{first['macs_before'] / 1e6:.2f}",
        f"{first['params_before'] / 1e3:.1f}",
        f"{first['latency']['1']['before_ms']:.2f}",
        f"{first['latency']['64']['before_ms']:.2f}",
        "1.00x",
    )
    for report in reports:
        table.add_row(
            report["method"],
            f"{report['top1_after']:.2f}",
            f"{report['macs_after'] / 1e6:.2f}",
            f"{report['params_after'] / 1e3:.1f}",
            f"{report['latency']['1']['after_ms']:.2f}",
            f"{report['latency']['64']['after_ms']:.2f}",
            f"{report['latency']['64']['speedup']:.2f}x",
        )
    return table
