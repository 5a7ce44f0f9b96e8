"""Benchmark: what would test-time flip averaging, and averaging several models, add to top-1?

Evaluates each model on the test split twice: as trained (one pass), and with the logits of each
image and its mirror image averaged (two passes). Given more than one model, it also evaluates
their ensemble (logits averaged over the models), with and without flips: the accuracy a
distillation teacher made of these models would have. secateurs reports single-pass accuracy of
one model everywhere; this measures how much of a gap to a target these could close, at two
(or 2N) times the inference cost, and how often mirroring an image changes the predicted class.

    python benchmarks/flip_tta.py benchmarks/baselines/resnet20-cifar10 \
        --data ../shared/data/cifar10
"""

from __future__ import annotations

import argparse

import torch

from secateurs.data import BatchLoader, load_split
from secateurs.measurement import evaluate
from secateurs.store import load_model
from secateurs.train.distill import Ensemble


class FlipAveraged(torch.nn.Module):
    """A classifier whose logits are the sum of its logits on the images and their mirrors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images) + self.model(images.flip(3))


@torch.no_grad()
def mirror_changes(model: torch.nn.Module, loader: BatchLoader) -> float:
    """Percent of the images whose predicted class changes when the image is mirrored."""
    model.eval()
    changed = seen = 0
    for images, _ in loader:
        changed += (model(images).argmax(1) != model(images.flip(3)).argmax(1)).sum().item()
        seen += len(images)
    return 100.0 * changed / seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="saved model directories")
    parser.add_argument("--data", default="../shared/data/cifar10")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| model | top-1 | top-1 with flip averaging | gain | mirroring changes the class |")
    print("|---|---:|---:|---:|---:|")
    models = []
    for path in args.models:
        model, manifest = load_model(path)
        test = load_split(args.data, "test", manifest.image_size)
        loader = BatchLoader(test, 256, manifest.mean, manifest.std)
        models.append(model)
        plain = evaluate(model, loader)["top1"]
        averaged = evaluate(FlipAveraged(model), loader)["top1"]
        changes = mirror_changes(model, loader)
        print(
            f"| {path} | {plain:.2f} | {averaged:.2f} | {averaged - plain:+.2f} | {changes:.2f}% |"
        )
    if len(models) > 1:
        ensemble = Ensemble(models).eval()
        plain = evaluate(ensemble, loader)["top1"]
        averaged = evaluate(FlipAveraged(ensemble), loader)["top1"]
        changes = mirror_changes(ensemble, loader)
        name = f"ensemble of the {len(models)} models"
        print(
            f"| {name} | {plain:.2f} | {averaged:.2f} | {averaged - plain:+.2f} | {changes:.2f}% |"
        )


if __name__ == "__main__":
    main()
