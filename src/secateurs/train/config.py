"""Training configuration: defaults here, a TOML file over them, command-line flags over both.
The resolved configuration is saved in the run directory."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from secateurs.errors import SecateursError


@dataclass
class TrainConfig:
    # what to train
    model: str = "resnet20"  # a registered name, or a saved model directory to start from
    model_args: dict[str, Any] = field(default_factory=dict)
    # a saved or imported model directory to transfer: its classifier is replaced for the data's
    # classes (runs/transfer.py); ``model`` is then unused
    start_from: str | None = None
    data: str = "digits"  # "digits", an ImageFolder root, or a cifar-10-batches-py folder
    image_size: int | None = None  # resize ImageFolder images to this (ImageNet layout)
    train_subset: int | None = None  # train on this many images (a fixed draw)
    test_subset: int | None = None
    # optimisation
    epochs: int = 40
    batch_size: int = 128  # global, split across DDP ranks
    lr: float = 0.1  # peak learning rate, reached after the warm-up
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # on conv and linear weights; on BN and biases if decay_norm
    decay_norm: bool = False  # weight decay on BN scales, shifts and biases too (plain SGD)
    schedule: str = "cosine"  # "cosine" (to zero), "step" or "constant"
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # fractions, for "step"
    gamma: float = 0.1  # step decay factor
    warmup_epochs: float = 1.0  # linear warm-up from 0, in epochs
    label_smoothing: float = 0.1
    ema_decay: float = 0.0  # > 0: keep an exponential moving average of the weights (and BN
    # statistics), updated every step; it is evaluated and saved instead of the raw weights
    # saved model directories to distil from (train/distill.py); several: their mean logits
    teacher: list[str] = field(default_factory=list)
    distill_weight: float = 0.9  # with a teacher: loss = (1 - w) cross-entropy + w distillation
    distill_temperature: float = 4.0
    teacher_flip: bool = False  # the teacher's logits averaged over each image and its mirror
    teacher_offline: bool = False  # the teacher run once on the stored training images, not on
    # each batch: no cost per step, targets blind to the crop
    # augmentation
    padding: int = 4  # random-crop shift in pixels
    flip: bool = True  # left-right flips
    alternate_flip: bool = False  # flip each image in every other epoch instead of at random
    cutout: int = 0  # > 0: zero one square of this side per image (after normalisation)
    # execution
    channels_last: bool = False
    device: str = "cpu"  # cpu, cuda, cuda:N or mps (under torchrun, cuda is each process's GPU)
    threads: int | None = None  # torch.set_num_threads; None leaves torch's default
    deterministic: bool = False  # torch.use_deterministic_algorithms
    seed: int = 0
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        # one directory as a string: configurations from before several teachers were allowed
        if self.teacher is None:
            self.teacher = []
        elif isinstance(self.teacher, str):
            self.teacher = [self.teacher]

    def validate(self) -> TrainConfig:
        self._check_types()
        if not isinstance(self.teacher, list) or not all(isinstance(t, str) for t in self.teacher):
            raise SecateursError(f"teacher must be model directories, not {self.teacher!r}")
        if self.teacher_offline and not self.teacher:
            raise SecateursError("an offline teacher needs a teacher (--teacher DIR)")
        from secateurs.device import device_check

        if device_check(self.device):
            raise SecateursError(f"--device {self.device}: {device_check(self.device)}")
        if self.epochs < 1:
            raise SecateursError(f"epochs must be at least 1, not {self.epochs}")
        if self.batch_size < 1:
            raise SecateursError(f"batch size must be at least 1, not {self.batch_size}")
        if self.eval_batch_size < 1:
            raise SecateursError(f"eval batch size must be at least 1, not {self.eval_batch_size}")
        for name in ("train_subset", "test_subset", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SecateursError(f"{name.replace('_', ' ')} must be at least 1, not {value}")
        if self.lr <= 0:
            raise SecateursError(f"learning rate must be positive, not {self.lr}")
        if not 0 <= self.momentum < 1:
            raise SecateursError(f"momentum must be in [0, 1), not {self.momentum}")
        if self.weight_decay < 0:
            raise SecateursError(f"weight decay must be >= 0, not {self.weight_decay}")
        if self.warmup_epochs < 0 or self.gamma <= 0:
            raise SecateursError("warm-up epochs must be >= 0 and the step factor gamma > 0")
        if self.schedule not in ("cosine", "step", "constant"):
            raise SecateursError(
                f"schedule must be 'cosine', 'step' or 'constant', not {self.schedule!r}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise SecateursError("label smoothing must be in [0, 1)")
        if self.alternate_flip and not self.flip:
            raise SecateursError("alternating flips need flips: drop --no-flip or --alternate-flip")
        if self.cutout < 0 or self.padding < 0:
            raise SecateursError("padding and cutout must be >= 0 pixels")
        if not 0 <= self.ema_decay < 1:
            raise SecateursError(f"EMA decay must be in [0, 1) (0: off), not {self.ema_decay}")
        if not 0 <= self.distill_weight <= 1:
            raise SecateursError(
                f"distillation weight must be in [0, 1], not {self.distill_weight}"
            )
        if self.distill_temperature <= 0:
            raise SecateursError(
                f"distillation temperature must be positive, not {self.distill_temperature}"
            )
        return self

    def _check_types(self) -> None:
        """Each number has its field's type: ``epochs = 1.5`` or ``batch_size = "64"`` in a file
        is refused, not rounded or left to fail deep inside training."""
        for spec in fields(self):
            value, kind = getattr(self, spec.name), str(spec.type)
            if value is None and "None" in kind:
                continue
            if kind.startswith("int"):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif kind.startswith("float"):
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            elif kind.startswith("bool"):
                ok = isinstance(value, bool)
            elif kind.startswith("str"):
                ok = isinstance(value, str)
            else:
                continue
            if not ok:
                expected = kind.split(" |")[0]
                raise SecateursError(f"{spec.name} must be {expected}, not {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_from_dict(values: dict[str, Any], source: str) -> TrainConfig:
    """A validated :class:`TrainConfig` from plain values (a TOML file, flags, a run's
    config.json); ``source`` names where they came from in the error."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SecateursError(f"unknown config keys: {', '.join(unknown)} (in {source})")
    try:
        return TrainConfig(**values).validate()
    except TypeError as error:
        raise SecateursError(f"invalid config value in {source}: {error}") from None


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the TOML file at ``path`` (if any), then ``overrides`` (None: not given)."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            values.update(tomllib.loads(path.read_text()))
        except OSError as error:
            raise SecateursError(f"cannot read config {path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise SecateursError(f"{path} is not a text (UTF-8) TOML file") from None
        except tomllib.TOMLDecodeError as error:
            raise SecateursError(f"{path} is not valid TOML: {error}") from None
    values.update({key: value for key, value in overrides.items() if value is not None})
    return config_from_dict(values, str(path) if path is not None else "the flags")
