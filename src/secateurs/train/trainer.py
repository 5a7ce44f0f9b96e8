"""The training loop: SGD with warm-up and a cosine, step or constant schedule, label smoothing,
optional channels-last, DDP, an exponential moving average of the weights and distillation from a
teacher, a checkpoint every epoch, and exact resumption.

A run directory holds ``config.json``, ``versions.json``, ``metrics.jsonl`` (one line an epoch),
``curves.png`` (test error and loss so far, redrawn every epoch),
``checkpoint.pt`` (model, optimizer, scheduler, RNG, epoch, callbacks) and, at the end, ``model/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from secateurs.data import Augmentation, BatchLoader, LabelledData
from secateurs.device import model_device
from secateurs.errors import SecateursError, first_line
from secateurs.measurement.accuracy import evaluate
from secateurs.progress import format_duration, progress_bar
from secateurs.train.callback import Callback
from secateurs.train.checkpoint import (
    load_checkpoint,
    numpy_state,
    python_state,
    save_checkpoint,
    set_numpy_state,
    set_python_state,
)
from secateurs.train.config import TrainConfig
from secateurs.train.curves import CURVES_FILE, plot_training
from secateurs.train.distill import PrecomputedTeacher, Teacher, distillation_loss
from secateurs.train.distributed import (
    DistributedContext,
    all_gather,
    all_sum,
    broadcast_buffers,
)
from secateurs.train.layout import MIN_SAFE_CHANNELS, channels_last_crashes
from secateurs.train.schedule import warmup_cosine, warmup_step

log = logging.getLogger(__name__)
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"


def weights_digest(model: nn.Module) -> str:
    """A short hash of every parameter and buffer: equal digests mean bitwise-equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def parameter_groups(
    model: nn.Module, weight_decay: float, decay_norm: bool = False
) -> list[dict[str, Any]]:
    """Weight decay on conv and linear weights; on BatchNorm scales, shifts and biases (every
    parameter of one dimension) only when ``decay_norm``, as plain ``SGD(weight_decay=...)``."""
    trained = [p for p in model.parameters() if p.requires_grad]
    decayed = [p for p in trained if p.ndim > 1 or decay_norm]
    plain = [p for p in trained if p.ndim <= 1 and not decay_norm]
    return [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]


class Trainer:
    """Train ``model`` on ``train_set``, evaluating on ``test_set`` after every epoch; with a
    ``teacher``, the loss mixes cross-entropy and distillation as ``config.distill_weight`` says."""

    def __init__(
        self,
        model: nn.Module,
        data: LabelledData,
        config: TrainConfig,
        run_dir: Path,
        *,
        callbacks: Sequence[Callback] = (),
        context: DistributedContext | None = None,
        teacher: nn.Module | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.context = context or DistributedContext()
        self.callbacks = list(callbacks)
        self.model = model
        self.device = model_device(model)  # where the loaders put every batch
        self.channels_last = config.channels_last and not self._channels_last_crashes(model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.teacher = self._build_teacher(teacher, data)
        cuda = [self.device.index] if self.device.type == "cuda" else None  # one GPU a process
        self.train_model: nn.Module = (
            DistributedDataParallel(self.model, device_ids=cuda)
            if self.context.enabled
            else self.model
        )
        self.train_loader, self.test_loader = self._build_loaders(data)
        self.optimizer = torch.optim.SGD(
            parameter_groups(self.model, config.weight_decay, config.decay_norm),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
        )
        self.steps_per_epoch = len(self.train_loader)
        self.scheduler = self._build_scheduler()
        self.ema = self._build_ema()
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps completed
        self.history: list[dict[str, Any]] = []

    @staticmethod
    def _channels_last_crashes(model: nn.Module) -> bool:
        crashes = channels_last_crashes(model)
        if crashes:
            log.warning(
                "training in NCHW, not channels-last: PyTorch's CPU backward crashes on strided "
                "1x1 convolutions with under %d input channels (%s)",
                MIN_SAFE_CHANNELS,
                ", ".join(crashes),
            )
        return bool(crashes)

    def _build_loaders(self, data: LabelledData) -> tuple[BatchLoader, BatchLoader]:
        config = self.config
        augment = Augmentation(config.padding, config.flip, config.alternate_flip, config.cutout)
        train_loader = BatchLoader(
            data.train,
            max(1, config.batch_size // self.context.world_size),
            data.mean,
            data.std,
            augment=augment,
            seed=config.seed,
            shard=(self.context.rank, self.context.world_size),
            channels_last=self.channels_last,
        ).to(self.device)
        if len(train_loader) == 0:
            raise SecateursError(
                f"{len(data.train)} training images make no full batch of {config.batch_size}"
            )
        test_loader = BatchLoader(
            data.test,
            config.eval_batch_size,
            data.mean,
            data.std,
            channels_last=self.channels_last,
        ).to(self.device)
        return train_loader, test_loader

    def _build_scheduler(self) -> torch.optim.lr_scheduler.LambdaLR:
        config = self.config
        total = config.epochs * self.steps_per_epoch
        warmup = round(config.warmup_epochs * self.steps_per_epoch)
        if config.schedule == "cosine":
            factor = lambda step: warmup_cosine(step, total, warmup)  # noqa: E731
        else:  # "step", or "constant": a step schedule without milestones
            milestones = config.milestones if config.schedule == "step" else []
            factor = lambda step: warmup_step(  # noqa: E731
                step, total, warmup, milestones, config.gamma
            )
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def _build_ema(self) -> AveragedModel | None:
        """torch's AveragedModel with an EMA of parameters and buffers (BatchNorm statistics
        included, so the averaged model needs no recalibration), updated after every optimizer
        step, before the callbacks' ``after_step``."""
        if not self.config.ema_decay:
            return None
        return AveragedModel(
            self.model,
            multi_avg_fn=get_ema_multi_avg_fn(self.config.ema_decay),
            use_buffers=True,
        )

    def _build_teacher(
        self, model: nn.Module | None, data: LabelledData
    ) -> Teacher | PrecomputedTeacher | None:
        """``model`` as the teacher: run on every batch, or, with ``config.teacher_offline``, run
        once now on every training image as stored (no crop; mirrored too with teacher_flip)."""
        if model is None:
            return None
        teacher = Teacher(model.to(self.device), self.config.teacher_flip)
        if self.channels_last:
            teacher.to(torch.channels_last)
        if not self.config.teacher_offline:
            return teacher
        stored = BatchLoader(
            data.train,
            self.config.eval_batch_size,
            data.mean,
            data.std,
            channels_last=self.channels_last,
        ).to(self.device)
        log.info("computing the teacher's logits for %d training images", len(data.train))
        return PrecomputedTeacher(teacher.precompute(stored.indexed(), len(data.train)))

    @property
    def final_model(self) -> nn.Module:
        """What the run produces: the weight average when there is one, else the model."""
        return self.ema.module if self.ema is not None else self.model

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "history": json.dumps(self.history),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": json.dumps(numpy_state()),
                "python": json.dumps(python_state()),
                # every GPU's generator (dropout, random augmentation on the device); none on a CPU
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "callbacks": [callback.state_dict() for callback in self.callbacks],
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise SecateursError(
                f"{self.checkpoint_path} does not hold the training state of this run "
                f"(it holds a {type(state).__name__})"
            )
        try:
            self._load_state_dict(state)
        except (KeyError, TypeError, IndexError, ValueError, RuntimeError) as error:
            reason = first_line(error, 160)
            raise SecateursError(
                f"{self.checkpoint_path} does not hold the training state of this run "
                f"({type(error).__name__}: {reason})"
            ) from None

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["callbacks"]) != len(self.callbacks):
            raise SecateursError(
                f"{self.checkpoint_path} holds the state of {len(state['callbacks'])} callbacks, "
                f"but this run has {len(self.callbacks)}: resume with the same method"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.history = json.loads(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        set_numpy_state(json.loads(state["rng"]["numpy"]))
        set_python_state(json.loads(state["rng"]["python"]))
        if state["rng"].get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        for callback, callback_state in zip(self.callbacks, state["callbacks"], strict=True):
            callback.load_state_dict(callback_state)
        if (self.ema is None) != ("ema" not in state):
            raise SecateursError(f"{self.checkpoint_path} and this run disagree on the EMA")
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])

    def resume(self) -> bool:
        """Load the run directory's checkpoint if it has one; True when it did."""
        if not self.checkpoint_path.exists():
            return False
        self.load_state_dict(load_checkpoint(self.checkpoint_path))
        if self.context.is_main:  # a crash after the checkpoint, before the metrics: redo them
            self._write_metrics()
        log.info("resumed %s after epoch %d", self.run_dir, self.epoch)
        return True

    def _write_metrics(self) -> None:
        """metrics.jsonl rewritten from the history the checkpoint holds (temporary file, then
        rename), so the file never has an epoch twice or one the checkpoint lacks."""
        path = self.run_dir / METRICS_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(record) + "\n" for record in self.history))
        os.replace(tmp, path)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train the remaining epochs; returns the per-epoch metrics of the whole run."""
        for callback in self.callbacks:
            callback.on_train_start(self)
        started, first_epoch = time.perf_counter(), self.epoch
        while self.epoch < self.config.epochs:
            record = self._train_epoch()
            record.update({f"test_{k}": v for k, v in self.evaluate().items()})
            self.epoch += 1
            for callback in self.callbacks:
                callback.on_epoch_end(self, self.epoch)
            self.history.append(record)
            # the run's end, at the mean pace (training and evaluation) of this process's epochs
            per_epoch = (time.perf_counter() - started) / (self.epoch - first_epoch)
            left = self.config.epochs - self.epoch
            log.info(
                "epoch %d/%d  loss %.4f  test top-1 %.2f%%  %.0f images/s%s",
                record["epoch"],
                self.config.epochs,
                record["train_loss"],
                record["test_top1"],
                record["images_per_s"],
                f"  {format_duration(per_epoch * left)} to go" if left else "",
            )
            if self.context.is_main:
                save_checkpoint(self.state_dict(), self.checkpoint_path)
                self._write_metrics()
                plot_training({self.run_dir.name: self.history}, self.run_dir / CURVES_FILE)
        return self.history

    def evaluate(self) -> dict[str, float]:
        """Test metrics of :attr:`final_model`; with an EMA, also the raw weights' top-1."""
        metrics = evaluate(self.final_model, self.test_loader)
        if self.ema is not None:
            metrics["raw_top1"] = evaluate(self.model, self.test_loader)["top1"]
        return metrics

    def _train_epoch(self) -> dict[str, Any]:
        self.train_model.train()
        self.train_loader.set_epoch(self.epoch)
        loss_sum = correct = seen = 0.0
        started = time.perf_counter()
        with progress_bar() as bar:
            task = bar.add_task(
                f"epoch {self.epoch + 1}/{self.config.epochs}",
                total=len(self.train_loader),
                rate="",
            )
            for index, images, labels in self.train_loader.indexed():
                for callback in self.callbacks:
                    callback.before_step(self)
                logits = self.train_model(images)
                loss = self._loss(images, logits, labels, index)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for callback in self.callbacks:
                    callback.after_backward(self)
                self.optimizer.step()
                self.scheduler.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                self.step += 1
                for callback in self.callbacks:
                    callback.after_step(self)
                loss_sum += loss.item() * len(labels)
                correct += (logits.argmax(1) == labels).sum().item()
                seen += len(labels)
                rate = seen * self.context.world_size / (time.perf_counter() - started)
                bar.update(task, advance=1, rate=f"{rate:.0f} img/s")
        seconds = time.perf_counter() - started
        broadcast_buffers(self.model, self.context)
        if self.ema is not None:  # each rank averaged its own BatchNorm statistics
            broadcast_buffers(self.ema.module, self.context)
        loss_sum, correct, seen = all_sum([loss_sum, correct, seen], self.context)
        return {
            "epoch": self.epoch + 1,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / seen,
            "train_top1": 100.0 * correct / seen,
            "epoch_seconds": round(seconds, 2),
            "images_per_s": round(seen / seconds, 1),
        }

    def _loss(
        self, images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor:
        hard = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        if self.teacher is None:
            return hard
        weight = self.config.distill_weight
        soft = distillation_loss(
            logits, self.teacher.logits(images, index), self.config.distill_temperature
        )
        return (1 - weight) * hard + weight * soft

    def rank_digests(self) -> list[str]:
        """Each rank's :func:`weights_digest` (one entry when not distributed)."""
        return [str(d) for d in all_gather(weights_digest(self.final_model), self.context)]
