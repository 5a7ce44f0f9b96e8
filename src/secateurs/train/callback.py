"""Hooks a training-time method (SPP, Campfire, ...) uses to act inside the trainer's loop.

Every method is a no-op here; a callback overrides what it needs. Its ``state_dict`` goes into the
run's checkpoint so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secateurs.train.trainer import Trainer


class Callback:
    def on_train_start(self, trainer: Trainer) -> None:
        """Once, before the first epoch (also after a resume)."""

    def before_step(self, trainer: Trainer) -> None:
        """Before each batch's forward pass (e.g. draw and apply masks)."""

    def after_backward(self, trainer: Trainer) -> None:
        """After the backward pass, before the optimizer step (e.g. mask gradients)."""

    def after_step(self, trainer: Trainer) -> None:
        """After the optimizer step (e.g. restore weights, update probabilities)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        """After the epoch's evaluation, before its checkpoint is written."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
