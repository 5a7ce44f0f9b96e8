"""Benchmark: SG-CNN against channel pruning at the same MACs target and the same epochs, on one
trained model (issue 27), with random channel pruning at three seeds as the noise floor.

Each run writes OUT/<run>/ through the library's own runs (``run_training_time``, ``run_prune``), so
every figure comes from a report.json; a run with a report.json is skipped and an interrupted
one resumes (``--resume`` is passed when its directory holds a run). SG-CNN trains for
``--epochs`` epochs, pruning included; channel pruning prunes once, then fine-tunes for the same
``--epochs``. Latency is timed in eager and onnxruntime, interleaved with the unpruned model,
``--repeats`` times. ``--summary`` prints the Markdown table for docs/results/sgcnn.md.
``--compact-from DIR`` starts each SG-CNN run from DIR's trained one and only compacts and
measures again; ``--runs sgcnn-G-seed1 ... l1-seed2`` adds seeds of the closest competitors.

    python benchmarks/sgcnn.py --out runs/bench-sgcnn --epochs 3
    python benchmarks/sgcnn.py --out runs/bench-sgcnn --summary
    python benchmarks/sgcnn.py --model benchmarks/baselines/vgg11_bn_quarter-cifar10 --fc \
        --target-macs 0.5 --train-subset 10000 --out runs/bench-sgcnn-vgg
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from bench_common import add_run_arguments, run_then_summarise
from secateurs.pruning.compaction.unread import UNREAD_POLICIES
from secateurs.report import Report, read_report
from secateurs.runs.prune_job import PruneJob
from secateurs.runs.prune_run import run_prune
from secateurs.runs.training_time_run import TrainingJob, run_training_time
from tables import spread

log = logging.getLogger("benchmark")
# run name -> (kind, method or scheme, seed)
RUNS: dict[str, tuple[str, str, int]] = {
    "sgcnn-L": ("sgcnn", "L", 0),
    "sgcnn-LG": ("sgcnn", "LG", 0),
    "sgcnn-G": ("sgcnn", "G", 0),
    "sgcnn-G-balanced": ("sgcnn-balanced", "G", 0),
    "l1": ("prune", "l1", 0),
    "taylor": ("prune", "taylor", 0),
    "random-seed0": ("prune", "random", 0),
    "random-seed1": ("prune", "random", 1),
    "random-seed2": ("prune", "random", 2),
}
# more seeds of the two closest competitors, run only when --runs names them
SEEDS: dict[str, tuple[str, str, int]] = {
    f"{name}-seed{seed}": (kind, what, seed)
    for name, kind, what in (("sgcnn-G", "sgcnn", "G"), ("l1", "prune", "l1"))
    for seed in (1, 2)
}


def start_from_trained(name: str, trained: Path, out: Path) -> None:
    """OUT/<run> starts from an earlier benchmark's trained run (its config and training
    checkpoint), so only compaction and measurement are done again (same weights, same
    accuracy)."""
    if out.exists():
        return
    source = trained / name
    if not (source / "train" / "checkpoint.pt").is_file():
        raise SystemExit(f"{source} holds no finished training to start from")
    out.mkdir(parents=True)
    shutil.copy2(source / "config.json", out / "config.json")
    shutil.copytree(source / "train", out / "train")


def run(name: str, args: argparse.Namespace, out: Path) -> None:
    kind, what, seed = {**RUNS, **SEEDS}[name]
    if args.compact_from and kind.startswith("sgcnn"):
        start_from_trained(name, Path(args.compact_from), out)
    shared = {
        "model": Path(args.model),
        "out": out,
        "data": args.data,
        "batch_size": 128,
        "threads": args.threads,
        "latency_repeats": args.repeats,
        "seed": seed,
        "resume": out.is_dir() and any(out.iterdir()),
        "train_subset": args.train_subset,
    }
    if kind.startswith("sgcnn"):
        job = TrainingJob.for_method(
            "sgcnn",
            **shared,
            target_macs=args.target_macs,
            epochs=args.epochs,
            lr=args.lr,
            scheme=what,
            groups=args.groups,
            step=args.step,
            stage_epochs=1,
            balanced=kind == "sgcnn-balanced",
            linear=args.fc,
            unread=args.unread,
        )
        run_training_time(job)
        return
    job = PruneJob(
        **shared,
        method=what,
        target_macs=args.target_macs,
        round_to=1,  # exact widths, as the published tables were made
        finetune_epochs=args.epochs,
        finetune_lr=args.lr,
    )
    run_prune(job)


def speed(report: Report, backend: str) -> str:
    rows = report.latency.get(backend, {})
    return " / ".join(f"{rows[b].speedup:.2f}x" for b in ("1", "64") if b in rows) or "-"


def summary(out: Path, names: list[str]) -> str:
    lines = [
        "| run | MACs computed | MACs (kept connections) | params kept | top-1 "
        "| speed-up eager b1 / b64 | speed-up onnxruntime b1 / b64 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    seeded: dict[str, list[float]] = {}  # run name without its seed -> top-1 of each seed
    for name in names:
        path = out / name / "report.json"
        if not path.exists():
            continue
        r = read_report(path)
        connections = r.pruning.details.get("connection_macs", r.cost_after.macs)
        seeded.setdefault(name.split("-seed")[0], []).append(r.top1("after"))

        lines.append(
            f"| {name} | {r.macs_kept:.3f} | {connections / r.cost_before.macs:.3f} "
            f"| {r.params_kept:.3f} | {r.top1('after'):.2f} | {speed(r, 'eager')} "
            f"| {speed(r, 'onnxruntime')} |"
        )
    for base, values in seeded.items():
        if len(values) > 1:
            lines += ["", f"{base}, {len(values)} seeds: {spread(values)} (mean ± sd)."]
    for name in names:
        path = out / name / "report.json"
        if name.startswith("sgcnn") and path.exists():
            lines += ["", f"{name}: {forms(read_report(path))}"]
    return "\n".join(lines)


def forms(report: Report) -> str:
    """The forms an SG-CNN run's layers were left in, the range of the best grouped form's
    speed-up per layer in onnxruntime (batch 1 and 64) and the whole-model check."""
    layers = report.pruning.details.get("layers", [])
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer["choice"]] = counts.get(layer["choice"], 0) + 1
    text = f"{len(layers)} layers: " + ", ".join(f"{n} {c}" for c, n in sorted(counts.items()))
    for batch in ("1", "64"):
        best = [
            max(layer["speedups"]["onnxruntime"][batch])
            for layer in layers
            if batch in layer.get("speedups", {}).get("onnxruntime", {})
        ]
        if best:
            text += f"; best form per layer, onnxruntime b{batch}: {min(best):.2f}-{max(best):.2f}x"
    check = report.pruning.details.get("whole_model_check") or {}
    if check:
        kept = "kept" if check["kept"] else "reverted to dense"
        text += f"; whole model grouped: {check['geometric_mean']:.2f}x (geometric mean), {kept}"
    unread = report.pruning.details.get("unread_channels") or {}
    if "geometric_mean" in unread:
        verdict = "removed" if unread["removed"] else "not removed"
        text += (
            f"; {unread['channels']} unread channels, the model without them "
            f"{unread['geometric_mean']:.2f}x (geometric mean): {verdict}"
        )
    return text + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, epochs=3)
    parser.add_argument("--groups", type=int, default=16, help="SG-CNN groups per layer")
    parser.add_argument(
        "--step", type=float, default=0.3, help="SG-CNN sparsity per stage (LG: one epoch each)"
    )
    parser.add_argument("--repeats", type=int, default=20, help="latency repeats (0: untimed)")
    parser.add_argument("--train-subset", type=int, help="train on a fixed draw of this many")
    parser.add_argument("--fc", action="store_true", help="SG-CNN groups the FC layers too")
    parser.add_argument(
        "--unread",
        default="if-faster",
        choices=UNREAD_POLICIES,
        help="SG-CNN: remove the input channels no group reads (before 2026-12-02: always)",
    )
    parser.add_argument(
        "--compact-from",
        metavar="DIR",
        help="SG-CNN runs: start from DIR's trained runs and only compact and measure again",
    )
    run_then_summarise(parser, list(RUNS), "runs/bench-sgcnn", run, summary, optional=list(SEEDS))


if __name__ == "__main__":
    main()
