"""Print a training run's record as Markdown: accuracy per epoch, wall time, images/s.

python benchmarks/record_training.py runs/resnet20-cifar10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    records = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").open()]
    config = json.loads((args.run_dir / "config.json").read_text())
    seconds = sum(r["epoch_seconds"] for r in records)
    best = max(records, key=lambda r: r["test_top1"])
    print(
        f"Model {config['model']}, {len(records)} epochs, final top-1 "
        f"{records[-1]['test_top1']:.2f}% (best {best['test_top1']:.2f}% at epoch "
        f"{best['epoch']}), training wall time {seconds / 60:.1f} min, median "
        f"{sorted(r['images_per_s'] for r in records)[len(records) // 2]:.0f} images/s."
    )
    print()
    print("| epoch | lr | train loss | train top-1 | test top-1 | test top-5 | s | images/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in records:
        print(
            f"| {r['epoch']} | {r['lr']:.4f} | {r['train_loss']:.4f} | {r['train_top1']:.2f} | "
            f"{r['test_top1']:.2f} | {r['test_top5']:.2f} | {r['epoch_seconds']:.0f} | "
            f"{r['images_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
