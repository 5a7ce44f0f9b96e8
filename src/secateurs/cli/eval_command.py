"""``secateurs eval``: accuracy of a saved model on a data set's test split."""

from __future__ import annotations

import argparse
import json

from secateurs.cli.parser import add_command, positive_int
from secateurs.data import BatchLoader, load_split
from secateurs.data.dataset import ImageSet
from secateurs.device import resolve_device
from secateurs.errors import SecateursError
from secateurs.measurement import evaluate
from secateurs.store import Manifest, load_model

DESCRIPTION = """Evaluate a saved model on the test (or val) split of a data set.

example:
  secateurs eval runs/r20/model --data ../shared/data/cifar10 --json
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "eval", "evaluate a saved model", DESCRIPTION)
    parser.add_argument("model", help="a saved model directory")
    parser.add_argument("--data", required=True, help="data set root (see `secateurs train -h`)")
    parser.add_argument(
        "--split", default="test", choices=["test", "train"], help="which split to evaluate"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=256, help="images per evaluation batch"
    )
    parser.add_argument(
        "--subset",
        type=positive_int,
        help="evaluate on a fixed draw of this many images (the draw `train --test-subset` makes)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the --subset draw")
    parser.add_argument("--device", default="cpu", help="evaluate on cpu, cuda, cuda:N or mps")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def checked_split(
    model_dir: str, manifest: Manifest, data: str, split: str, subset: int | None, seed: int
) -> ImageSet:
    """``data``'s ``split`` read as the model was trained on it (resized only if training was
    given --image-size), checked against the model's input and classes, optionally a fixed
    draw of ``subset`` images."""
    image_set = load_split(data, split, manifest.image_size)
    if list(image_set.input_size) != manifest.input_size:
        raise SecateursError(
            f"{model_dir} takes {tuple(manifest.input_size)} inputs but {data} holds "
            f"{image_set.input_size}"
        )
    if image_set.classes != manifest.classes:
        raise SecateursError(f"{data} does not have the classes {model_dir} was trained on")
    return image_set.subset(subset, seed=seed) if subset else image_set


def run(args: argparse.Namespace) -> int:
    model, manifest = load_model(args.model, device=resolve_device(args.device))
    image_set = checked_split(args.model, manifest, args.data, args.split, args.subset, args.seed)
    loader = BatchLoader(image_set, args.batch_size, manifest.mean, manifest.std)
    loader.to(resolve_device(args.device))
    result = evaluate(model, loader)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  on {result['n']} images")
    return 0
