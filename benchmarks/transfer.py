"""Benchmark for issue 29 (docs/results/zoo.md, "Transfer"): the kept ResNet-20, trained on
CIFAR-10, moved to another small data set with ``secateurs train --from``, then pruned; a
ResNet-20 trained from scratch on the same data for the same epochs is the control.

The other data set is scikit-learn's bundled handwritten digits (1,797 images, nothing
downloaded), written once as a 32x32 RGB ImageFolder (each 8x8 image scaled up 4x, grey in all
three channels) so that it fits the CIFAR model's input.

    python benchmarks/transfer.py --out runs/transfer --epochs 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch.nn.functional as F
from PIL import Image

from secateurs.data.digits import read_digits


def write_digits32(root: Path) -> None:
    """The digits as an ImageFolder of 32x32 RGB PNGs (train/ and test/, one folder a class)."""
    for split in ("train", "test"):
        images = read_digits(split)
        big = F.interpolate(images.images.float(), scale_factor=4, mode="nearest")
        for index, (image, label) in enumerate(zip(big, images.labels, strict=True)):
            folder = root / split / str(int(label))
            folder.mkdir(parents=True, exist_ok=True)
            pixels = image[0].round().clamp(0, 255).byte().numpy()
            Image.fromarray(pixels).convert("RGB").save(folder / f"{index:04d}.png")


def secateurs(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "secateurs", *argv], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/transfer")
    parser.add_argument("--model", default="benchmarks/baselines/resnet20-cifar10")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", default="2")
    args = parser.parse_args()
    out = Path(args.out)
    data = out / "digits32"
    if not (data / "test").exists():
        write_digits32(data)
    common = ["--data", str(data), "--epochs", str(args.epochs), "--threads", args.threads]
    common += ["--batch-size", "64", "--lr", "0.05"]
    runs = {
        "transferred": ["train", "--from", args.model, *common, "--out", str(out / "transferred")],
        "scratch": ["train", "--model", "resnet20", *common, "--out", str(out / "scratch")],
    }
    for name, argv in runs.items():
        if not (out / name / "model").exists():
            secateurs(*argv)
    pruned = out / "transferred-l1"
    if not (pruned / "report.json").exists():
        secateurs(
            "prune", str(out / "transferred" / "model"), "--method", "l1", "--target-macs", "0.5",
            "--data", str(data), "--finetune-epochs", str(args.epochs), "--threads", args.threads,
            "--batch-size", "64", "--latency-repeats", "0", "-o", str(pruned),
        )  # fmt: skip
    rows = {}
    for name in ("transferred", "scratch"):
        lines = (out / name / "metrics.jsonl").read_text().splitlines()
        rows[name] = [json.loads(line)["test_top1"] for line in lines]
    report = json.loads((pruned / "report.json").read_text())
    print(json.dumps({"per_epoch_top1": rows, "pruned_report": report["accuracy"]}, indent=2))


if __name__ == "__main__":
    main()
