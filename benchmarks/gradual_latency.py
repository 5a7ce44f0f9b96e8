"""Benchmark: gradual latency pruning (``taylor-gradual --target-latency``, after HALP) against
one-shot Taylor pruned to the same measured latency target and fine-tuned as long.

Per latency target R (a fraction of the dense model's latency in ``--backend`` at batch
``--batch``) and seed:

- ``gradual``: ``secateurs taylor-gradual --target-latency R``, ``--steps`` steps over the first
  ``--prune-until`` of ``--epochs`` epochs, then fine-tuning to the end of the run;
- ``oneshot``: ``secateurs prune --method taylor --target-latency R`` (the latency allocation,
  measured and corrected), then ``--epochs`` epochs of fine-tuning.

Both keep at least ``--min-channels`` per group, train on the same images, and time the result
against the dense model in the report (``--backend`` at ``--batch``, interleaved). The summary:
the ratio each run's own decision measured, the report's ratio (1 / speed-up), top-1 after,
MACs kept and, for the gradual runs, the steps' median |measured / predicted - 1| and the last
step's corrections. Timing happens inside the runs (each step is measured): run it on a quiet
machine, or the decisions follow noise. Runs with a report.json are skipped (it resumes).

    python benchmarks/gradual_latency.py --targets 0.5 0.33 --epochs 10 --train-subset 10000
    python benchmarks/gradual_latency.py --summary
"""

from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path

import torch

from bench_common import run_missing
from secateurs.data.sources import default_cifar10_root
from secateurs.report import read_report
from secateurs.runs.prune_job import PruneJob
from secateurs.runs.prune_run import run_prune
from secateurs.runs.training_time_run import TrainingJob, run_training_time

log = logging.getLogger("benchmark")


def names(args: argparse.Namespace) -> list[str]:
    return [
        f"{kind}-R{ratio:g}-s{seed}"
        for ratio in args.targets
        for seed in range(args.seeds)
        for kind in ("gradual", "oneshot")
    ]


def run(name: str, args: argparse.Namespace, out: Path) -> None:
    kind, ratio, seed = name.split("-")
    shared = dict(
        model=Path(args.model), out=out, data=args.data, train_subset=args.train_subset,
        seed=int(seed[1:]), threads=args.threads, backend=args.backend, latency_batch=args.batch,
        latency_cache=args.latency_cache, min_channels=args.min_channels,
        latency_backends=(args.backend,), latency_batches=(args.batch,),
        latency_repeats=args.repeats, resume=out.is_dir() and any(out.iterdir()),
    )  # fmt: skip
    target = float(ratio[1:])
    if kind == "gradual":
        job = TrainingJob.for_method(
            "taylor-gradual", target_latency=target, steps=args.steps,
            prune_until=args.prune_until, epochs=args.epochs, lr=args.lr, **shared,
        )  # fmt: skip
        job.check()
        run_training_time(job)
    else:
        job = PruneJob(
            method="taylor", target_latency=target, finetune_epochs=args.epochs, **shared
        )
        job.check()
        run_prune(job)


def summary(out: Path, runs: list[str]) -> str:
    lines = [
        "| run | measured ratio (decision) | report ratio | top-1 after | MACs kept | "
        "steps: median abs(measured / predicted - 1) | corrections |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in runs:
        path = out / name / "report.json"
        if not path.exists():
            continue
        report = read_report(path)
        ratios = [1 / t.speedup for b in report.latency.values() for t in b.values()]
        report_ratio = f"{ratios[0]:.3f}" if ratios else "-"
        gradual = report.pruning.details.get("taylor_gradual")
        errors, corrections = "-", "-"
        if gradual:
            steps = gradual["decisions"]
            off = [abs(d["measured"] / d["predicted"] - 1) for d in steps]
            errors = f"{statistics.median(off):.3f}" if off else "-"
            corrections = str(len(steps[-1]["corrections"])) if steps else "-"
        lines.append(
            f"| {name} | {report.pruning.achieved_ratio:.3f} | {report_ratio} "
            f"| {report.top1('after'):.2f} | {report.macs_kept:.3f} | {errors} | {corrections} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="benchmarks/baselines/resnet20-cifar10")
    parser.add_argument("--data", default=str(default_cifar10_root()))
    parser.add_argument("--targets", type=float, nargs="+", default=[0.5])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--train-subset", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--prune-until", type=float, default=0.5)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--min-channels", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds per model")
    parser.add_argument("--latency-cache", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/bench-gradual-latency")
    parser.add_argument("--summary", action="store_true", help="only print the Markdown table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out = Path(args.out)
    if not args.summary:
        torch.set_num_threads(args.threads)
        run_missing(out, names(args), lambda name, path: run(name, args, path))
    print(summary(out, names(args)))


if __name__ == "__main__":
    main()
