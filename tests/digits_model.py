"""A small model trained on the digits for command-line tests: a saved model directory."""

from __future__ import annotations

from pathlib import Path


def train_digits(out: Path, epochs: int = 1, label_smoothing: float = 0.1) -> Path:
    """Train a ResNet-20 on the digits for ``epochs`` (one thread) into ``out``; returns its
    model directory."""
    from secateurs.runs.train_run import run_training
    from secateurs.train.config import TrainConfig

    config = TrainConfig(data="digits", epochs=epochs, batch_size=64, lr=0.05, padding=1)
    config.flip, config.threads, config.label_smoothing = False, 1, label_smoothing
    run_training(config, out)
    return out / "model"
