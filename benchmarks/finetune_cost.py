"""What a converged fine-tune costs here: training images per second of a pruned model, with and
without distillation from the unpruned one, through the library's own fine-tuning
(``secateurs.fine_tune``, the recipe of ``secateurs prune --finetune-epochs``). Run it alone:

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/finetune_cost.py \\
        --pair benchmarks/baselines/resnet20-cifar10 runs/r20-lat64 \\
        --pair benchmarks/baselines/resnet56-cifar10 runs/r56-lat64 --images 5000

Prints one JSON line per model and mode: images, seconds (the epoch and its evaluation on 500
test images), images per second, and the hours an
epoch plan takes (``--plan-epochs`` epochs on all 50,000 training images).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import secateurs
from secateurs.data.sources import default_cifar10_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", nargs=2, action="append", metavar=("DENSE", "PRUNED"))
    parser.add_argument("--data", default=str(default_cifar10_root()))
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--plan-epochs", type=int, default=30)
    args = parser.parse_args()
    for dense_dir, pruned_dir in args.pair:
        dense, _ = secateurs.load(dense_dir)
        for distill in (0.0, 0.9):
            model, manifest = secateurs.load(pruned_dir)
            data = secateurs.load_data(
                args.data, manifest=manifest, train_subset=args.images, test_subset=500
            )
            teacher = dense if distill else None
            with tempfile.TemporaryDirectory() as run_dir:
                started = time.perf_counter()
                secateurs.fine_tune(model, data, epochs=1, manifest=manifest, run_dir=run_dir,
                                    distill=distill, teacher=teacher)  # fmt: skip
                seconds = time.perf_counter() - started
            rate = args.images / seconds
            print(json.dumps({
                "model": pruned_dir, "distill": distill, "images": args.images,
                "seconds": round(seconds, 1), "images_per_s": round(rate, 1),
                "hours_for_plan": round(args.plan_epochs * 50_000 / rate / 3600, 2),
            }))  # fmt: skip


if __name__ == "__main__":
    main()
