"""Evidence that a refactor changes no results: run a fixed set of small, seeded, untimed pruning
runs through the CLI and keep what they found (top-1, MACs, parameters, kept channels) in
OUT/summary.json; ``--compare A B`` prints where two summaries differ (nothing: identical).

Run from the checkout whose code is tested (the model path is relative to the working
directory), with that checkout's ``src`` on PYTHONPATH:

    cd /work/wt-base && PYTHONPATH=src OMP_NUM_THREADS=1 python \\
        /work/wt-rec/benchmarks/same_results.py --out /work/baseline-runs/before
    cd /work/wt-rec && PYTHONPATH=src OMP_NUM_THREADS=1 python \\
        benchmarks/same_results.py --out /work/baseline-runs/after
    python benchmarks/same_results.py --compare /work/baseline-runs/before /work/baseline-runs/after

Every run has --latency-repeats 0, so compaction takes its untimed layer forms. The demo has no
such option: its timings are excluded from the summary like every other latency or duration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MODEL = "benchmarks/baselines/resnet20-cifar10"
SMALL = ["--train-subset", "512", "--test-subset", "500", "--seed", "0"]
UNTIMED = ["--latency-repeats", "0", "--threads", "1"]
BUSY = ["--batch-size", "32", "--interval", "1"]  # 32 iterations, a pruning update each
RUNS: dict[str, list[str]] = {
    "prune-taylor": [
        "prune",
        "--method",
        "taylor",
        "--target-macs",
        "0.5",
        "--round-to",
        "1",
        "--finetune-epochs",
        "1",
    ],
    "spp-column": ["spp", "--granularity", "column", "--target-macs", "0.5", "--epochs", "2"],
    # 3 epochs: scheme LG refuses 2 stages x 1 epoch in 2 (the global fine-tuning gets none)
    "sgcnn": ["sgcnn", "--target-macs", "0.5", "--epochs", "3", "--step", "0.3"],
    "campfire-window": [
        "campfire",
        "--granularity",
        "window",
        "--sparsity",
        "0.5",
        "--epochs",
        "2",
    ],
    "taylor-gradual": ["taylor-gradual", "--target-macs", "0.5", "--epochs", "2"],
    # the two above prune nothing in 8 iterations (update intervals 10 and 30): these do
    "spp-column-busy": ["spp", "--granularity", "column", "--epochs", "2", *BUSY],
    "taylor-gradual-busy": ["taylor-gradual", "--target-macs", "0.5", "--epochs", "2", *BUSY],
}
DEMO = ("l1", "taylor")  # the demo's methods
# keys whose values are timings or depend on the clock: never compared
TIMING_WORDS = ("latency", "seconds", "_ms", "speedup", "realisation", "timed", "time")


def run_all(out: Path, data: str, model: str, only: list[str] | None) -> None:
    """Every run (or those in ``only``) into OUT/NAME, then OUT/summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    for name, args in RUNS.items():
        if only and name not in only:
            continue
        if (out / name / "report.json").exists():
            continue
        command, *rest = args
        try:
            _cli([command, model, *rest, "--data", data, *SMALL, *UNTIMED, "-o", str(out / name)])
        except subprocess.CalledProcessError as error:
            print(f"{name} failed ({error.returncode}); going on", flush=True)
    demo_done = all((out / "demo" / f"pruned-{m}" / "report.json").exists() for m in DEMO)
    if (not only or "demo" in only) and not demo_done:
        _cli(["demo", "--out", str(out / "demo")])
    summary = summarise(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    print(json.dumps({k: v.get("accuracy") for k, v in summary.items()}, indent=1))


def _cli(args: list[str]) -> None:
    print("secateurs", " ".join(args), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    subprocess.run([sys.executable, "-m", "secateurs", *args], check=True, env=env)


def summarise(out: Path) -> dict[str, Any]:
    """Each finished run's results, by run name (the demo's two methods as demo/l1, demo/taylor)."""
    found = {name: out / name for name in RUNS}
    found.update({f"demo/{m}": out / "demo" / f"pruned-{m}" for m in DEMO})
    summary = {}
    for name, run in found.items():
        path = run / "report.json"
        if path.exists():
            summary[name] = _results(json.loads(path.read_text()))
    return summary


def _results(report: dict[str, Any]) -> dict[str, Any]:
    pruning = report.get("pruning", {})
    return {
        "accuracy": {
            stage: {k: v for k, v in acc.items() if k in ("top1", "top5", "images")}
            for stage, acc in report.get("accuracy", {}).items()
        },
        "cost_before": report.get("cost_before"),
        "cost_after": report.get("cost_after"),
        "channels": pruning.get("channels"),
        "pruning": _untimed(pruning),
    }


def _untimed(value: Any) -> Any:
    """``value`` without the keys that hold timings."""
    if isinstance(value, dict):
        return {
            k: _untimed(v)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in TIMING_WORDS)
        }
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ, one line per difference (empty: identical)."""
    if isinstance(a, dict) and isinstance(b, dict):
        lines = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}/{key}"
            if key not in a or key not in b:
                lines.append(f"{where}: only in {'B' if key not in a else 'A'}")
            else:
                lines += differences(a[key], b[key], where)
        return lines
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return [line for i, (x, y) in pairs for line in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def table(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Markdown: each run's top-1 after and its cost in summary A beside summary B."""
    rows = [
        "| run | top-1 before | top-1 after (A / B) | MACs after (A / B) | params after (A / B) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, old in a.items():
        new = b.get(name, {})
        top1 = [run.get("accuracy", {}).get("after", {}).get("top1") for run in (old, new)]
        macs = [run.get("cost_after", {}).get("macs") for run in (old, new)]
        params = [run.get("cost_after", {}).get("params") for run in (old, new)]
        before = old["accuracy"]["before"]["top1"]
        rows.append(
            f"| {name} | {before:.2f} | {top1[0]:.2f} / {top1[1]:.2f} | {macs[0]:,} / {macs[1]:,} "
            f"| {params[0]:,} / {params[1]:,} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="directory of the runs and summary.json")
    parser.add_argument("--data", default="../shared/data/cifar10", help="CIFAR-10 root")
    parser.add_argument("--model", default=MODEL, help="the dense model (relative to cwd)")
    parser.add_argument("--only", nargs="+", help=f"these runs only: {', '.join(RUNS)}, demo")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="two summaries")
    parser.add_argument("--table", action="store_true", help="with --compare: a Markdown table")
    args = parser.parse_args()
    if args.compare:
        a, b = (
            json.loads((p / "summary.json" if p.is_dir() else p).read_text()) for p in args.compare
        )
        if args.table:
            print(table(a, b))
            return
        lines = differences(a, b)
        print("\n".join(lines) if lines else "identical")
        sys.exit(1 if lines else 0)
    if args.out is None:
        parser.error("--out or --compare")
    run_all(args.out, args.data, args.model, args.only)


if __name__ == "__main__":
    main()
