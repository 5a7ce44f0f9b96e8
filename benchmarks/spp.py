"""Benchmark: SPP on the ResNet-20 CIFAR-10 baseline at 2x fewer conv MACs (a kept MACs ratio of
0.5 counted the paper's way), column and channel granularity, each next to the deterministic
one-shot L1 baseline at the same granularity, budget and total epochs.

Phase 1 trains (no timing): each run writes OUT/<run>/ through :func:`run_training_time`, compact
layers untimed, and is skipped when its report exists; ``--workers 2 --worker i`` splits the
runs over two single-threaded processes. Phase 2 (``--latency``), run alone on a quiet machine,
reruns every run with ``resume``: training is not repeated, compaction is redone with each layer's
compact-or-dense choice timed, and the compacted model is timed against the dense one
(interleaved, batch 1 and 64). ``--summary`` prints the Markdown table.

    python benchmarks/spp.py --threads 1 --workers 2 --worker 0 &
    python benchmarks/spp.py --threads 1 --workers 2 --worker 1 &
    wait; python benchmarks/spp.py --latency --summary
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from bench_common import add_run_arguments
from secateurs.report import read_report
from secateurs.runs.training_time_run import TrainingJob, run_training_time

log = logging.getLogger("benchmark")
RUNS = ["column", "column-oneshot", "channel", "channel-oneshot"]


def job(name: str, args: argparse.Namespace, out: Path, timed: bool) -> TrainingJob:
    granularity, _, oneshot = name.partition("-")
    return TrainingJob.for_method(
        "spp",
        model=Path(args.model),
        data=args.data,
        out=out,
        granularity=granularity,
        target_macs=args.target_macs,
        epochs=args.epochs,
        lr=args.lr,
        oneshot=bool(oneshot),
        interval=args.interval,
        threads=2 if timed else args.threads,
        latency_repeats=args.repeats if timed else 0,
        latency_backends=("eager",),
        resume=out.is_dir() and any(out.iterdir()),
    )


def summary(out: Path, names: list[str]) -> str:
    lines = [
        "| run | MACs kept (paper's count) | params kept | top-1 masked | top-1 compacted | "
        "pruning over after (iterations) | speed-up b1 | speed-up b64 | compact layers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    before = None
    for name in names:
        path = out / name / "report.json"
        if not path.exists():
            continue
        r = read_report(path)
        before = r.top1("before")
        latency = r.latency.get("eager", {})
        speed = [f"{latency[b].speedup:.2f}x" if b in latency else "-" for b in ("1", "64")]
        choices: dict[str, int] = {}
        for layer in r.pruning.details.get("compact_layers", []):
            choices[layer["choice"]] = choices.get(layer["choice"], 0) + 1
        chosen = ", ".join(f"{n} {c}" for c, n in sorted(choices.items())) or "-"
        finished = r.pruning.details["spp"]["finished_step"]
        lines.append(
            f"| {name} | {r.pruning.achieved_ratio:.3f} | {r.params_kept:.3f} "
            f"| {r.top1('masked'):.2f} | {r.top1('after'):.2f} | {finished} | "
            f"{speed[0]} | {speed[1]} | {chosen} |"
        )
    if before is not None:
        lines += ["", f"Unpruned top-1: {before:.2f}%."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, epochs=10)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="for training")
    parser.add_argument("--runs", nargs="+", default=RUNS)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-spp")
    parser.add_argument("--latency", action="store_true", help="phase 2: compact timed, latency")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--summary", action="store_true", help="print the Markdown table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out = Path(args.out)
    if args.latency:
        for name in args.runs:
            if (out / name / "report.json").exists():
                log.info("=== timing %s", name)
                run_training_time(job(name, args, out / name, timed=True))
    elif not args.summary:
        torch.set_num_threads(args.threads)
        for name in args.runs[args.worker :: args.workers]:
            if (out / name / "report.json").exists():
                continue
            log.info("=== %s", name)
            run_training_time(job(name, args, out / name, timed=False))
    if args.summary:
        print(summary(out, args.runs))


if __name__ == "__main__":
    main()
