"""Training inside a run: the one place a :class:`~secateurs.train.trainer.Trainer` is built, so
every run kind (training, fine-tuning after pruning, training-time pruning) checkpoints, resumes
and runs under ``torchrun`` the same way."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.data import LabelledData
from secateurs.device import model_device
from secateurs.store import Manifest
from secateurs.train.callback import Callback
from secateurs.train.config import TrainConfig
from secateurs.train.distributed import DistributedContext, barrier, init_distributed
from secateurs.train.trainer import Trainer

CONFIG_FILE = "config.json"
RANKS_FILE = "ranks.json"  # under torchrun: each rank's weights digest after training
# fine-tuning keeps the augmentation and regularisation the model was trained with
INHERITED = (
    "padding",
    "flip",
    "alternate_flip",
    "cutout",
    "label_smoothing",
    "weight_decay",
    "decay_norm",
    "momentum",
    "nesterov",
)


@dataclass
class Training:
    """What a training run produced: the trained model (the weight average when there is one),
    the per-epoch records of the whole run, and each rank's weights digest."""

    model: nn.Module
    history: list[dict[str, Any]]
    rank_digests: list[str]

    @property
    def seconds(self) -> float:
        return round(sum(record["epoch_seconds"] for record in self.history), 1)


def inherited_recipe(manifest: Manifest, **settings: Any) -> TrainConfig:
    """A fine-tuning recipe: the model's own augmentation and regularisation, no warm-up, and
    ``settings`` (epochs, lr, batch size, seed, threads, data, ...) over them."""
    recipe = {key: manifest.training[key] for key in INHERITED if key in manifest.training}
    return TrainConfig(warmup_epochs=0, **{**recipe, **settings}).validate()


def apply_runtime_settings(config: TrainConfig) -> None:
    """Threads, determinism and the seed, as the configuration says."""
    if config.threads:
        torch.set_num_threads(config.threads)
    if torch.are_deterministic_algorithms_enabled() != config.deterministic:
        torch.use_deterministic_algorithms(config.deterministic)
    torch.manual_seed(config.seed)


def train_model(
    model: nn.Module,
    data: LabelledData,
    config: TrainConfig,
    run_dir: Path,
    *,
    callbacks: Sequence[Callback] = (),
    teacher: nn.Module | None = None,
    context: DistributedContext | None = None,
) -> Training:
    """Train ``model`` in place as ``config`` says, checkpointing into ``run_dir`` (its
    config.json written by rank 0); a checkpoint already there is resumed. Under ``torchrun``
    each rank trains its share of every batch (DDP) and all end with the same weights."""
    context = context or init_distributed(model_device(model))
    run_dir = Path(run_dir)
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    barrier(context)
    apply_runtime_settings(config)
    trainer = Trainer(
        model, data, config, run_dir, callbacks=callbacks, context=context, teacher=teacher
    )
    trainer.resume()
    history = trainer.fit()
    digests = trainer.rank_digests()
    if context.enabled and context.is_main:  # the evidence that the ranks ended in step
        (run_dir / RANKS_FILE).write_text(json.dumps({"rank_weight_digests": digests}) + "\n")
    return Training(trainer.final_model, history, digests)
