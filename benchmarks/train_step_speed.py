"""Benchmark: how fast is one training step, by memory layout, EMA, batch size and teacher?

Times full SGD steps (forward, backward, update) of a fresh model on random data, every variant
in each round (A B C A B C ...), and prints the median time per step and images/s. Use it to
decide ``--channels-last`` and the batch size on a machine, and to tell a slow host from a slow
recipe: images/s of training runs on different days are not comparable, ratios from one run of
this script are.

    OMP_NUM_THREADS=2 python benchmarks/train_step_speed.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from secateurs.models import create_model
from secateurs.train.distill import Teacher, distillation_loss
from secateurs.train.trainer import parameter_groups

# name -> (channels-last model and input, EMA of the weights, batch size, teacher: None, a
# teacher of the same architecture, or one averaging each image with its mirror)
VARIANTS = {
    "nchw b128": (False, False, 128, None),
    "channels-last b128": (True, False, 128, None),
    "channels-last+ema b128": (True, True, 128, None),
    "channels-last b64": (True, False, 64, None),
    "channels-last+teacher b128": (True, False, 128, "plain"),
    "channels-last+teacher-flip b128": (True, False, 128, "flip"),
}


def make_step(
    model_name: str, channels_last: bool, ema: bool, batch: int, teacher: str | None
) -> Callable[[], None]:
    """A closure that runs one training step of its own model, optimizer and data (and, with a
    teacher, the distillation loss of the trainer)."""
    model = create_model(model_name)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.SGD(parameter_groups(model, 5e-4), lr=0.1, momentum=0.9, nesterov=True)
    average = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
        if ema
        else None
    )
    images = torch.randn(batch, 3, 32, 32).contiguous(memory_format=layout)
    labels = torch.randint(0, 10, (batch,))
    guide = None
    if teacher is not None:
        guide = Teacher(create_model(model_name), flip=teacher == "flip").to(layout)

    def step() -> None:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        if guide is not None:
            loss = 0.1 * loss + 0.9 * distillation_loss(logits, guide.logits(images), 4.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update_parameters(model)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8, help="rounds after one warm-up round")
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    steps = {name: make_step(args.model, *variant) for name, variant in VARIANTS.items()}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_index in range(args.rounds + 1):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                step()
            if round_index > 0:
                times[name].append((time.perf_counter() - started) / args.steps)
    reference = statistics.median(times["nchw b128"])
    print(f"{args.model}, {args.threads} threads, median of {args.rounds} rounds")
    print(f"{'variant':<32} {'ms/step':>8} {'images/s':>9} {'vs nchw b128':>13}")
    for name, (_, _, batch, _) in VARIANTS.items():
        median = statistics.median(times[name])
        per_image = (median / batch) / (reference / 128)
        print(f"{name:<32} {median * 1000:8.0f} {batch / median:9.0f} {1 / per_image:12.2f}x")


if __name__ == "__main__":
    main()
