"""Benchmark: Campfire (window, kernel and filter level) against unstructured magnitude AGP at
equal weight sparsity, and against one-shot channel pruning (l1, random) and SPP at equal MACs
and equal epochs, from one trained model (issue 28).

Each run writes OUT/<run>/ through the library's own runs (``run_training_time``, ``run_prune``)
so every figure comes from a report.json; a run with a report.json is skipped and
an interrupted one resumes. Training runs are untimed (the machine is shared while they
train); ``benchmarks/campfire_measure.py`` then times every finished model against the unpruned
one, interleaved, in eager and onnxruntime, and attacks it (FGSM and PGD), writing
``OUT/<run>/measured.json``. ``--summary`` prints the Markdown tables for docs/results/campfire.md.

    python benchmarks/campfire.py --out runs/bench-campfire --epochs 3 \
        --train-subset 10000 --interval 10
    python benchmarks/campfire_measure.py --out runs/bench-campfire
    python benchmarks/campfire.py --out runs/bench-campfire --train-subset 10000 --summary

The headline configurations run at three seeds (the seed also draws the training subset).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench_common import add_run_arguments, run_then_summarise
from campfire_tables import summary
from secateurs.runs.prune_job import PruneJob
from secateurs.runs.prune_run import run_prune
from secateurs.runs.training_time_run import TrainingJob, run_training_time

log = logging.getLogger("benchmark")
# configuration -> (kind, granularity or method, weight sparsity or MACs target)
CONFIGS: dict[str, tuple[str, str, float]] = {
    "window-70": ("campfire", "window", 0.7),
    "kernel-70": ("campfire", "kernel", 0.7),
    "unstructured-70": ("campfire", "unstructured", 0.7),
    "l1-macs0.32": ("prune", "l1", 0.32),
    "random-macs0.32": ("prune", "random", 0.32),
    "window-50": ("campfire", "window", 0.5),
    "kernel-50": ("campfire", "kernel", 0.5),
    "unstructured-50": ("campfire", "unstructured", 0.5),
    "kernel+window-70": ("campfire", "kernel+window", 0.7),
    "filter-macs0.32": ("campfire-macs", "filter", 0.32),
    "spp-column-macs0.32": ("spp", "column", 0.32),
}
HEADLINE = ["window-70", "kernel-70", "unstructured-70", "l1-macs0.32", "random-macs0.32"]
# run name -> (configuration, seed): the headline rows at three seeds first, then the rest
RUNS: dict[str, tuple[str, int]] = {
    **{name: (name, 0) for name in HEADLINE},
    **{f"{name}-seed{seed}": (name, seed) for seed in (1, 2) for name in HEADLINE},
    **{name: (name, 0) for name in CONFIGS if name not in HEADLINE},
}


def run(name: str, args: argparse.Namespace, out: Path) -> None:
    configuration, seed = RUNS[name]
    kind, what, budget = CONFIGS[configuration]
    shared = {
        "model": Path(args.model),
        "out": out,
        "data": args.data,
        "batch_size": 128,
        "threads": args.threads,
        "latency_repeats": 0,
        "seed": seed,
        "train_subset": args.train_subset,
        "resume": out.is_dir() and any(out.iterdir()),
    }
    if kind.startswith("campfire"):
        sparsity = {"sparsity": budget} if kind == "campfire" else {"target_macs": budget}
        job = TrainingJob.for_method("campfire",
            **shared, granularity=what, epochs=args.epochs, lr=args.lr, interval=args.interval,
            **sparsity,
        )  # fmt: skip
        run_training_time(job)
    elif kind == "spp":
        job = TrainingJob.for_method(
            "spp", **shared, granularity=what, target_macs=budget, epochs=args.epochs, lr=args.lr
        )
        run_training_time(job)
    else:
        job = PruneJob(
            **shared,
            method=what,
            target_macs=budget,
            round_to=1,  # exact widths, as the published tables were made
            finetune_epochs=args.epochs,
            finetune_lr=args.lr,
        )
        run_prune(job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, epochs=3)
    parser.add_argument("--train-subset", type=int, help="train on a fixed draw of this many")
    parser.add_argument("--interval", type=int, default=100, help="Campfire mask update steps")
    run_then_summarise(parser, list(RUNS), "runs/bench-campfire", run, summary)


if __name__ == "__main__":
    main()
