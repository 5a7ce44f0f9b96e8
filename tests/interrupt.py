"""Stopping a run as a crash would, right after its first epoch's checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cut_after_first_epoch() -> Iterator[None]:
    """Inside, every Trainer runs its first epoch, checkpoints it, then raises
    KeyboardInterrupt (a command returns 130)."""
    from secateurs.train import trainer as trainer_module

    original = trainer_module.Trainer.fit

    def one_epoch(self):  # the run's own loop, cut after epoch 1
        epochs = self.config.epochs
        self.config.epochs = 1
        try:
            original(self)
        finally:
            self.config.epochs = epochs
        raise KeyboardInterrupt

    trainer_module.Trainer.fit = one_epoch
    try:
        yield
    finally:
        trainer_module.Trainer.fit = original
