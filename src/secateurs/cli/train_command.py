"""``secateurs train``: train a model from the zoo (or continue a saved one) on a data set."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secateurs.cli.parser import add_command, non_negative_int, positive_int
from secateurs.runs.train_run import CONFIG_FILE, read_run_config, run_training
from secateurs.train.config import TrainConfig, load_config

log = logging.getLogger(__name__)

DESCRIPTION = """Train a model and save it (safetensors + manifest) in OUT/model.

examples:
  secateurs train --model resnet20 --data ../shared/data/cifar10 --epochs 40 --out runs/r20
  secateurs train --resume --out runs/r20          # continue a run that was stopped
  secateurs train --from runs/r20/model --data NEW --epochs 10 --out runs/r20-new  # transfer
  secateurs train --model resnet20 --data DATA --teacher runs/r56/model --out runs/r20-kd
  secateurs train --model resnet20 --data DATA --teacher runs/a/model runs/b/model \
      --teacher-offline --out runs/r20-kd2    # two teachers' mean, computed once
  torchrun --nproc_per_node 2 -m secateurs train --model resnet20 --data DATA --out runs/ddp
"""

# flags that map one-to-one onto TrainConfig fields: (flag, type, help)
FLAGS: list[tuple[str, Callable[[str], Any], str]] = [
    ("model", str, "registered model name, or a saved model directory to fine-tune"),
    ("data", str, "'digits', an ImageFolder root with train/ and test/, or cifar-10-batches-py"),
    ("image-size", positive_int, "resize ImageFolder images to this size (ImageNet layout)"),
    ("epochs", positive_int, "epochs to train"),
    ("batch-size", positive_int, "global batch size"),
    ("lr", float, "peak learning rate"),
    ("weight-decay", float, "weight decay on conv and linear weights"),
    ("schedule", str, "cosine, step or constant"),
    ("warmup-epochs", float, "linear warm-up length in epochs"),
    ("label-smoothing", float, "label smoothing factor"),
    ("ema-decay", float, "average the weights with this EMA decay, e.g. 0.999 (0: off)"),
    ("distill-weight", float, "with --teacher: weight of the distillation term, 1 - w on labels"),
    ("distill-temperature", float, "with --teacher: softmax temperature of the soft targets"),
    ("momentum", float, "SGD momentum"),
    ("padding", non_negative_int, "random-crop shift in pixels"),
    ("cutout", non_negative_int, "zero a square of this side in each training image (0: off)"),
    ("train-subset", positive_int, "train on this many images (a fixed draw)"),
    ("test-subset", positive_int, "evaluate on this many images"),
    ("threads", positive_int, "torch threads"),
    ("device", str, "cpu, cuda, cuda:N or mps (under torchrun, cuda: each process's own GPU)"),
    ("seed", int, "random seed"),
]


SWITCHES = [
    ("alternate-flip", "flip each image in every other epoch instead of at random"),
    ("decay-norm", "weight decay on BatchNorm parameters and biases too"),
    (
        "teacher-offline",
        "run the teacher once on the stored training images before training (no cost per "
        "step; its targets ignore the crop)",
    ),
    ("teacher-flip", "average the teacher's logits over each image and its mirror"),
    ("channels-last", "train in the channels-last memory layout (~1.2x faster on this CPU)"),
    ("deterministic", "torch.use_deterministic_algorithms (bitwise repeatable, slower)"),
]


def add_parser(commands: argparse._SubParsersAction) -> None:
    # the flags' help already shows TrainConfig's defaults; theirs are None ("not given")
    parser = add_command(commands, "train", "train a model", DESCRIPTION)
    defaults = TrainConfig()
    for flag, kind, text in FLAGS:
        default = getattr(defaults, flag.replace("-", "_"))
        parser.add_argument(f"--{flag}", type=kind, default=None, help=f"{text} [{default}]")
    parser.add_argument(
        "--from",
        dest="start_from",
        metavar="MODEL_DIR",
        help="start from this saved or imported model, its classifier replaced for --data's "
        "classes (transfer)",
    )
    parser.add_argument("--config", help="TOML file of settings (flags override it)")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--no-flip", action="store_true", help="no left-right flips")
    for flag, text in SWITCHES:  # None when not given: the config file's value stands
        parser.add_argument(f"--{flag}", action="store_true", default=None, help=text)
    parser.add_argument(
        "--teacher",
        nargs="+",
        metavar="DIR",
        help="saved model directories to distil from (knowledge distillation); several: the "
        "mean of their logits",
    )
    parser.add_argument(
        "--nesterov",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Nesterov momentum (on by default)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    overrides = {
        flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag, *_ in FLAGS
    }
    overrides.update(
        nesterov=args.nesterov,
        decay_norm=args.decay_norm,
        channels_last=args.channels_last,
        deterministic=args.deterministic,
        flip=False if args.no_flip else None,
        alternate_flip=args.alternate_flip,
        teacher=args.teacher,
        teacher_flip=args.teacher_flip,
        teacher_offline=args.teacher_offline,
        start_from=args.start_from,
    )
    config: TrainConfig = load_config(args.config, overrides)
    if args.resume:
        _warn_ignored_settings(Path(args.out), overrides)
    summary = run_training(config, args.out, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"top-1 {summary['top1']:.2f}%  top-5 {summary['top5']:.2f}%  ->  {args.out}/model")
    return 0


def _warn_ignored_settings(run_dir: Path, given: dict[str, Any]) -> None:
    """A resumed run keeps the settings in its config.json: say which flags that overrules."""
    if not (run_dir / CONFIG_FILE).is_file():
        return
    saved = read_run_config(run_dir).to_dict()
    for key, value in given.items():
        if value is not None and key in saved and saved[key] != value:
            log.warning(
                "--resume keeps %s = %r from %s; ignoring --%s %r",
                key,
                saved[key],
                run_dir / CONFIG_FILE,
                key.replace("_", "-"),
                value,
            )
