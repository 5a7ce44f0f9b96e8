"""A whole training run from a :class:`TrainConfig`: data, model, trainer, run directory, and the
saved model at the end. ``secateurs train`` is a thin shell around :func:`run_training`."""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs import __version__
from secateurs.data import ImageSet, LabelledData, load_split
from secateurs.device import model_device, resolve_device
from secateurs.errors import SecateursError, first_line
from secateurs.models import create_model
from secateurs.runs.training import apply_runtime_settings, train_model
from secateurs.store import Manifest, load_model, save_model
from secateurs.train.callback import Callback
from secateurs.train.config import TrainConfig, config_from_dict
from secateurs.train.distill import Ensemble, Renormalized
from secateurs.train.distributed import DistributedContext, init_distributed
from secateurs.train.trainer import CHECKPOINT_FILE

log = logging.getLogger(__name__)
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "torch": torch.__version__}
    found["secateurs"] = __version__
    for name in ("torchvision", "torch_pruning"):
        with contextlib.suppress(ImportError):
            found[name] = __import__(name).__version__
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        ).stdout.strip()
        if commit:
            found["git_commit"] = commit
    except OSError:
        pass
    return found


def load_data(config: TrainConfig) -> tuple[ImageSet, ImageSet]:
    train_set = load_split(config.data, "train", config.image_size)
    test_set = load_split(config.data, "test", config.image_size)
    if config.train_subset:
        train_set = train_set.subset(config.train_subset, seed=config.seed)
    if config.test_subset:
        test_set = test_set.subset(config.test_subset, seed=config.seed)
    if train_set.classes != test_set.classes:
        raise SecateursError("the train and test splits have different classes")
    if train_set.input_size != test_set.input_size:
        hint = (
            ": pass --image-size to resize both"
            if train_set.input_size[1:] != test_set.input_size[1:]
            else " (one is grayscale, the other colour)"
        )
        raise SecateursError(
            f"the train split holds {tuple(train_set.input_size)} images and the test split "
            f"{tuple(test_set.input_size)}{hint}"
        )
    return train_set, test_set


def build_start_model(config: TrainConfig, train_set: ImageSet) -> tuple[nn.Module, Manifest]:
    """A fresh registered architecture, the model saved in a directory (to fine-tune it), or one
    transferred to this data set's classes (``start_from``)."""
    if config.start_from:
        from secateurs.runs.transfer import transfer_model

        return transfer_model(config.start_from, train_set)
    if Path(config.model).is_dir():
        model, manifest = load_model(config.model)
        if manifest.classes != train_set.classes:
            raise SecateursError(
                f"{config.model} was trained on classes {manifest.classes[:4]}..., "
                f"not this data set's {train_set.classes[:4]}..."
            )
        if list(train_set.input_size) != list(manifest.input_size):
            raise SecateursError(
                f"{config.model} takes {tuple(manifest.input_size)} inputs but {config.data} "
                f"holds {tuple(train_set.input_size)}"
            )
        return model.train(), manifest
    channels = train_set.input_size[0]
    arguments = {"num_classes": len(train_set.classes), "in_channels": channels}
    arguments.update(config.model_args)
    model = create_model(config.model, **arguments)
    try:  # one image through it: a model that cannot take this size fails here, in one line
        with torch.no_grad():
            model.eval()(torch.zeros(1, *train_set.input_size, device=model_device(model)))
    except RuntimeError as error:
        first = first_line(error)
        raise SecateursError(
            f"{config.model} cannot take {tuple(train_set.input_size)} images: {first}"
        ) from None
    model.train()
    mean, std = train_set.channel_stats()
    manifest = Manifest(
        config.model,
        arguments,
        train_set.classes,
        list(train_set.input_size),
        mean,
        std,
        image_size=config.image_size,
    )
    return model, manifest


def load_teacher(config: TrainConfig, manifest: Manifest) -> nn.Module | None:
    """The saved models ``config.teacher`` names, checked against the student's classes and input;
    several make one :class:`Ensemble`."""
    teachers = []
    for path in config.teacher:
        teacher, teacher_manifest = load_model(path)
        if teacher_manifest.classes != manifest.classes:
            raise SecateursError(f"teacher {path} was trained on other classes")
        if teacher_manifest.input_size != manifest.input_size:
            raise SecateursError(
                f"teacher {path} takes inputs of size {teacher_manifest.input_size}, "
                f"the student {manifest.input_size}"
            )
        own = (teacher_manifest.mean, teacher_manifest.std)
        if own != (manifest.mean, manifest.std):
            log.info("teacher %s was trained with another normalisation: mapping to it", path)
            teacher = Renormalized(teacher, (manifest.mean, manifest.std), own)
        teachers.append(teacher)
    if not teachers:
        return None
    return teachers[0] if len(teachers) == 1 else Ensemble(teachers)


def prepare_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> TrainConfig:
    """Create ``run_dir`` for a new run, or read back the configuration of the run to resume."""
    config_path = run_dir / CONFIG_FILE
    if run_dir.exists() and not run_dir.is_dir():
        raise SecateursError(f"{run_dir} is a file, not a run directory")
    if resume:
        if not (run_dir / CHECKPOINT_FILE).exists():
            raise SecateursError(
                f"nothing to resume in {run_dir}: it holds no {CHECKPOINT_FILE} "
                "(start the run without --resume)"
            )
        if config_path.exists():
            return read_run_config(run_dir)
    if not resume and (run_dir / CHECKPOINT_FILE).exists():
        raise SecateursError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    (run_dir / "versions.json").write_text(json.dumps(versions(), indent=2) + "\n")
    return config


def read_run_config(run_dir: Path) -> TrainConfig:
    """The configuration a run directory was started with (its config.json), validated."""
    path = run_dir / CONFIG_FILE
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SecateursError(f"cannot read {path}: {error}") from None
    if not isinstance(values, dict):
        raise SecateursError(f"{path} does not hold a training configuration")
    return config_from_dict(values, str(path))


def run_training(
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    callbacks: list[Callback] | None = None,
) -> dict[str, Any]:
    """Train as ``config`` says into ``run_dir``; returns the summary written to summary.json."""
    run_dir = Path(run_dir)
    device = resolve_device(config.device)
    context = init_distributed(device)
    config = prepare_run_dir(run_dir, config, resume) if context.is_main else config
    if context.enabled:
        _wait_for_main(context)
        config = read_run_config(run_dir)
    apply_runtime_settings(config)
    train_set, test_set = load_data(config)
    model, manifest = build_start_model(config, train_set)
    model = model.to(device)
    teacher = load_teacher(config, manifest)
    data = LabelledData(train_set, test_set, manifest.mean, manifest.std)
    training = train_model(
        model, data, config, run_dir, callbacks=callbacks or [], teacher=teacher, context=context
    )
    history, digests = training.history, training.rank_digests
    final = history[-1]
    if not manifest.training or config.start_from:  # a transfer: its recipe and its source
        manifest.training = {**config.to_dict(), **manifest.training}
    manifest.metrics = {
        "top1": final["test_top1"],
        "top5": final["test_top5"],
        "epochs": config.epochs,
        "data": str(config.data),
    }
    summary = {
        "run_dir": str(run_dir),
        "top1": final["test_top1"],
        "top5": final["test_top5"],
        "epochs": len(history),
        "train_seconds": round(sum(r["epoch_seconds"] for r in history), 1),
        "images_per_s": round(sum(r["images_per_s"] for r in history) / len(history), 1),
        "rank_weight_digests": digests,
    }
    if context.is_main:
        save_model(training.model, run_dir / "model", manifest)
        (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _wait_for_main(context: DistributedContext) -> None:
    import torch.distributed as dist

    if context.enabled:
        dist.barrier()
