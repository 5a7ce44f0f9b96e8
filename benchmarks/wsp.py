"""Benchmark: WSP's data-driven saliency against its weight-norm proxy, against L1 norm and Taylor,
on one trained model at one MACs target, one-shot and after fine-tuning (issue 6).

Each run is one ``secateurs prune`` job writing OUT/<run>/ (pruned model and report.json, whose
costs hold the fully-connected layers' parameters, ``fc_params``); a run with a report.json is
skipped, so the benchmark resumes after an interruption. No latency is timed
(``latency_repeats=0``): time the models later on a quiet machine. ``--summary`` prints the
Markdown table for docs/results/wsp.md.

    python benchmarks/wsp.py --model benchmarks/baselines/resnet20-cifar10 --out runs/bench-wsp-r20
    python benchmarks/wsp.py --model benchmarks/baselines/vgg11_bn_quarter-cifar10 \
        --out runs/bench-wsp-vgg11q
    python benchmarks/wsp.py --out runs/bench-wsp-r20 --summary
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench_common import add_run_arguments, run_then_summarise
from secateurs.report import read_report
from secateurs.runs.prune_job import PruneJob
from secateurs.runs.prune_run import run_prune

log = logging.getLogger("benchmark")
# run name -> (method, method parameters, seed, global-ranking normalisation; None: the method's)
RUNS: dict[str, tuple[str, dict, int, str | None]] = {
    "wsp-data": ("wsp", {}, 0, None),
    "wsp-weights": ("wsp", {"saliency": "weights"}, 0, None),
    "l1": ("l1", {}, 0, None),
    "taylor": ("taylor", {}, 0, None),
    # raw Taylor scores ranked globally cut VGG's last layers to 1-2 channels in one shot;
    # divided by their group's mean, layers compare on equal terms
    "taylor-mean": ("taylor", {}, 0, "mean"),
    "random-seed0": ("random", {}, 0, None),
    "random-seed1": ("random", {}, 1, None),
}


def run(name: str, args: argparse.Namespace, out: Path) -> None:
    method, params, seed, normalize = RUNS[name]
    job = PruneJob(
        model=Path(args.model),
        method=method,
        method_params=params,
        out=out,
        target_macs=args.target_macs,
        data=args.data,
        finetune_epochs=args.epochs,
        finetune_lr=args.lr,
        threads=args.threads,
        resume=out.is_dir() and any(out.iterdir()),
        latency_repeats=0,
        latency_backends=("eager",),
        seed=seed,
        normalize=normalize,
    )
    run_prune(job)


def summary(out: Path, names: list[str]) -> str:
    lines = [
        "| run | MACs kept | params kept | FC params kept | top-1 one-shot | top-1 after FT |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    before = None
    for name in names:
        path = out / name / "report.json"
        if not path.exists():
            continue
        r = read_report(path)
        before = r.top1("before")
        after = f"{r.top1('after'):.2f}" if r.settings.training_epochs else "(not fine-tuned)"
        fc_before, fc_after = r.cost_before.fc_params or 0, r.cost_after.fc_params or 0
        fc_kept = fc_after / fc_before if fc_before else 1.0
        lines.append(
            f"| {name} | {r.macs_kept:.3f} | {r.params_kept:.3f} | {fc_kept:.3f} "
            f"({fc_before - fc_after:,} removed) | {r.top1('oneshot'):.2f} | {after} |"
        )
    if before is not None:
        lines += ["", f"Unpruned top-1: {before:.2f}%."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, epochs=10)
    run_then_summarise(parser, list(RUNS), "runs/bench-wsp", run, summary)


if __name__ == "__main__":
    main()
