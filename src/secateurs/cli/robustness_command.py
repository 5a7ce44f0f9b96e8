"""``secateurs robustness``: a saved model's accuracy under FGSM and PGD attacks (L-inf, in
pixel space through the model's normalisation), seeded and deterministic."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from secateurs.cli.eval_command import checked_split
from secateurs.cli.parser import add_command, positive_int
from secateurs.device import resolve_device
from secateurs.errors import SecateursError
from secateurs.measurement.robustness import AttackSettings, robust_accuracy
from secateurs.store import load_model

DESCRIPTION = """Accuracy of a saved model on clean test images and under adversarial attack:
FGSM (one signed-gradient step) and PGD (random start, --pgd-steps steps of a quarter of
epsilon), L-inf, epsilon in grey levels of 255 (2/255 and 8/255 by default), images kept in
[0, 1] and normalised as the model was trained. Same seed, same result.

examples:
  secateurs robustness runs/r20/model --data ../shared/data/cifar10 --subset 1000
  secateurs robustness runs/r20-campfire --data ../shared/data/cifar10 --eps 2 4 8 -o robust.json
"""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "robustness", "accuracy under FGSM / PGD", DESCRIPTION)
    parser.add_argument("model", help="a saved model directory")
    parser.add_argument("--data", required=True, help="data set root (see `secateurs train -h`)")
    parser.add_argument(
        "--eps", type=_positive_float, nargs="+", default=[2.0, 8.0], help="epsilons, of 255"
    )
    parser.add_argument("--pgd-steps", type=positive_int, default=10, help="PGD iterations")
    parser.add_argument(
        "--subset", type=positive_int, help="attack a fixed draw of this many test images"
    )
    parser.add_argument("--batch-size", type=positive_int, default=250, help="images per batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw and PGD's start")
    parser.add_argument("--device", default="cpu", help="attack on cpu, cuda, cuda:N or mps")
    parser.add_argument("-o", "--out", type=Path, help="also write the result to this JSON file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None and args.out.is_dir():
        raise SecateursError(f"{args.out} is a directory: name a JSON file")
    model, manifest = load_model(args.model, device=resolve_device(args.device))
    image_set = checked_split(args.model, manifest, args.data, "test", args.subset, args.seed)
    settings = AttackSettings(args.eps, args.pgd_steps, batch_size=args.batch_size, seed=args.seed)
    result = robust_accuracy(model, image_set, manifest.mean, manifest.std, settings)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"top-1 on {result['n']} test images")
    for key, value in result.items():
        if key != "n":
            print(f"  {key:<10} {value:6.2f}%")
    return 0
