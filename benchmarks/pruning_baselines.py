"""Benchmark: every baseline method (and Torch-Pruning's own pruner) on one trained model at one
MACs target, with the same fine-tuning budget; random pruning with several seeds.

Each run writes OUT/<name>/report.json and is skipped when that exists, so the benchmark resumes
after an interruption (a run stopped mid-fine-tune continues from its checkpoint). At the end the
table is printed as Markdown (``--summary-only`` prints it from what exists).

    python benchmarks/pruning_baselines.py --model benchmarks/baselines/resnet20-cifar10 \
        --data ../shared/data/cifar10 --target-macs 0.5 --epochs 10 --out runs/bench-baselines
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import statistics
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp

from secateurs.data import BatchLoader, load_split
from secateurs.data.sources import default_cifar10_root
from secateurs.measure import LatencySettings, compare, count_cost, evaluate
from secateurs.pipeline import FINETUNE_INHERITS, PruneJob, run_prune
from secateurs.store import load_model
from secateurs.train.config import TrainConfig
from secateurs.train.trainer import Trainer

log = logging.getLogger("benchmark")
DEFAULT_RUNS = [
    "l1",
    "l2",
    "taylor",
    "bn_scale",
    "random:0",
    "random:1",
    "random:2",
    "tp-magnitude",
    "tp-taylor",
]


def ours(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    method, _, seed = name.partition(":")
    job = PruneJob(
        model_dir=Path(args.model),
        method=method,
        out=out,
        target_ratio=args.target_macs,
        data=args.data,
        finetune_epochs=args.epochs,
        finetune_lr=args.lr,
        seed=int(seed or 0),
        threads=args.threads,
        resume=out.exists(),
        strategy=args.strategy,
    )
    return run_prune(job)


def _tp_prune(model, importance, ratio_target: float, input_size, batches):
    """Torch-Pruning's MetaPruner (uniform per-layer ratio, its default) with the pruning ratio
    found by bisection so that the MACs ratio meets the target; returns (pruned copy, ratio)."""
    example = torch.randn(1, *input_size)
    base = count_cost(model, input_size)["macs"]

    def pruned_copy(ratio: float):
        candidate = copy.deepcopy(model)
        pruner = tp.pruner.MetaPruner(
            candidate,
            example,
            importance=importance,
            pruning_ratio=ratio,
            ignored_layers=[m for m in candidate.modules() if isinstance(m, torch.nn.Linear)],
        )
        if isinstance(importance, tp.importance.TaylorImportance):
            candidate.zero_grad()
            for images, labels in batches:
                torch.nn.functional.cross_entropy(candidate(images), labels).backward()
        pruner.step()
        return candidate, count_cost(candidate, input_size)["macs"] / base

    low, high = 0.0, 0.95
    best = None
    for _ in range(20):
        middle = (low + high) / 2
        candidate, achieved = pruned_copy(middle)
        if achieved > ratio_target:
            low = middle
        else:
            high, best = middle, (candidate, achieved)
        if best and abs(best[1] / ratio_target - 1) < 0.005:
            break
    assert best is not None
    return best


def torch_pruning(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    original, manifest = load_model(args.model)
    train_set = load_split(args.data, "train")
    test_set = load_split(args.data, "test")
    loader = BatchLoader(train_set.subset(8 * 128, 0), 128, manifest.mean, manifest.std)
    batches = list(loader)
    importance = (
        tp.importance.TaylorImportance()
        if name == "tp-taylor"
        else tp.importance.MagnitudeImportance(p=1)
    )
    test_loader = BatchLoader(test_set, 256, manifest.mean, manifest.std)
    top_before = evaluate(original, test_loader)
    model, achieved = _tp_prune(
        original, importance, args.target_macs, manifest.input_size, batches
    )
    model.eval()
    oneshot = evaluate(model, test_loader)
    recipe = {k: manifest.training[k] for k in FINETUNE_INHERITS if k in manifest.training}
    config = TrainConfig(
        model=args.model,
        data=args.data,
        epochs=args.epochs,
        lr=args.lr,
        warmup_epochs=0,
        threads=args.threads,
        **recipe,
    )
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(
        model.train(), train_set, test_set, config, out / "finetune", manifest.mean, manifest.std
    )
    (out / "finetune").mkdir(exist_ok=True)
    trainer.resume()
    trainer.fit()
    after = evaluate(model, test_loader)
    cost_before = count_cost(original, manifest.input_size)
    cost_after = count_cost(model, manifest.input_size)
    timings = compare(
        [original.eval(), model.eval()], manifest.input_size, LatencySettings((1, 64), args.threads)
    )
    reduction = cost_before["macs"] / cost_after["macs"]
    return {
        "method": name,
        "achieved_ratio": achieved,
        "macs_before": cost_before["macs"],
        "macs_after": cost_after["macs"],
        "params_before": cost_before["params"],
        "params_after": cost_after["params"],
        "top1_before": top_before["top1"],
        "top1_oneshot": oneshot["top1"],
        "top1_after": after["top1"],
        "finetune_epochs": args.epochs,
        "latency": {
            str(b): {
                "before_ms": r[0]["median"],
                "after_ms": r[1]["median"],
                "speedup": r[1]["ratio"],
                "realisation": r[1]["ratio"] / reduction,
            }
            for b, r in timings.items()
        },
    }


def summary(out: Path, names: list[str]) -> str:
    rows = []
    for name in names:
        path = out / name.replace(":", "-seed") / "report.json"
        if path.exists():
            rows.append((name, json.loads(path.read_text())))
    if not rows:
        return "(no results yet)"
    lines = [
        "| method | MACs kept | params kept | top-1 one-shot | top-1 after FT | speed-up b1 | "
        "speed-up b64 | realisation b64 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    randoms = []
    for name, r in rows:
        if name.startswith("random"):
            randoms.append(r["top1_after"])
        lines.append(
            f"| {name} | {r['macs_after'] / r['macs_before']:.3f} | "
            f"{r['params_after'] / r['params_before']:.3f} | {r['top1_oneshot']:.2f} | "
            f"{r['top1_after']:.2f} | {r['latency']['1']['speedup']:.2f}x | "
            f"{r['latency']['64']['speedup']:.2f}x | {r['latency']['64']['realisation']:.2f} |"
        )
    before = rows[0][1]["top1_before"]
    lines.append("")
    lines.append(f"Unpruned top-1: {before:.2f}%.")
    if len(randoms) > 1:
        lines.append(
            f"Random over {len(randoms)} seeds: mean {statistics.mean(randoms):.2f}%, "
            f"standard deviation {statistics.stdev(randoms):.2f}."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="benchmarks/baselines/resnet20-cifar10")
    parser.add_argument("--data", default=str(default_cifar10_root()))
    parser.add_argument("--target-macs", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--strategy", default="global")
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS)
    parser.add_argument("--out", default="runs/bench-baselines")
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out = Path(args.out)
    if not args.summary_only:
        for name in args.runs:
            run_dir = out / name.replace(":", "-seed")
            if (run_dir / "report.json").exists():
                continue
            log.info("=== %s", name)
            if name.startswith("tp-"):
                report = torch_pruning(name, args, run_dir)
                (run_dir / "report.json").write_text(json.dumps(report, indent=2))
            else:
                ours(name, args, run_dir)
    print(summary(out, args.runs))


if __name__ == "__main__":
    main()
