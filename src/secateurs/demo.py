"""The demo: train a CIFAR-style ResNet-20 on scikit-learn's bundled digits (8x8, no download),
then measure accuracy, MACs, parameters and latency, and print them as a table."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

from secateurs.data import BatchLoader, load_split
from secateurs.measure import LatencySettings, count_cost, evaluate, measure_latency
from secateurs.store import load_model
from secateurs.train.config import TrainConfig
from secateurs.train.run import run_training

log = logging.getLogger(__name__)


def demo_config(epochs: int) -> TrainConfig:
    # digits are 8x8: a 1-pixel shift, no flips (a mirrored digit is another glyph)
    return TrainConfig(
        model="resnet20", data="digits", epochs=epochs, batch_size=64, lr=0.05, padding=1,
        flip=False, warmup_epochs=1, label_smoothing=0.0,
    )  # fmt: skip


def run_demo(out: str | Path, epochs: int = 15) -> dict[str, float]:
    """Train, reload from disk, measure; returns the row printed."""
    out = Path(out)
    log.info("training resnet20 on the digits set for %d epochs", epochs)
    run_training(demo_config(epochs), out / "train", resume=(out / "train").exists())
    model, manifest = load_model(out / "train" / "model")
    test_set = load_split("digits", "test")
    accuracy = evaluate(model, BatchLoader(test_set, 256, manifest.mean, manifest.std))
    cost = count_cost(model, manifest.input_size)
    latency = measure_latency(model, manifest.input_size, LatencySettings(repeats=20))
    row = {
        "top1": accuracy["top1"],
        "macs": cost["macs"],
        "params": cost["params"],
        "latency_1_ms": latency[1]["median"],
        "latency_64_ms": latency[64]["median"],
    }
    table = Table(title="secateurs demo: resnet20 on digits (8x8)")
    for column in ("model", "top-1 %", "MACs (M)", "params (K)", "batch 1 (ms)", "batch 64 (ms)"):
        table.add_column(column, justify="right")
    table.add_row(
        "dense",
        f"{row['top1']:.2f}",
        f"{row['macs'] / 1e6:.2f}",
        f"{row['params'] / 1e3:.1f}",
        f"{row['latency_1_ms']:.2f}",
        f"{row['latency_64_ms']:.2f}",
    )
    Console().print(table)
    return row
