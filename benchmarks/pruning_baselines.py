"""Benchmark: every baseline method, and Torch-Pruning's own pruner, on one trained model at one
MACs target with the same fine-tuning budget; random pruning with several seeds.

Phase 1 prunes and fine-tunes (no timing): each run writes OUT/<run>/ (the pruned model and
report.json) and is skipped when report.json exists, so the benchmark resumes after an
interruption; ``--workers 2 --worker i`` splits the runs over two single-threaded processes.
Phase 2 (``--latency``), run alone on a quiet machine, times the dense model and every pruned one
interleaved in one loop and writes OUT/latency.json. ``--summary`` prints the Markdown table.

    python benchmarks/pruning_baselines.py --threads 1 --workers 2 --worker 0 &
    python benchmarks/pruning_baselines.py --threads 1 --workers 2 --worker 1 &
    wait; python benchmarks/pruning_baselines.py --latency --summary
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch_pruning as tp

from bench_common import add_run_arguments
from secateurs.data import LabelledData, load_split
from secateurs.errors import SecateursError
from secateurs.measurement import LatencySettings, compare, count_cost
from secateurs.report import PruningRecord, Report, RunSettings, read_report, write_report
from secateurs.runs.measuring import accuracy, cost
from secateurs.runs.prune_job import PruneJob, parse_method_params
from secateurs.runs.prune_run import run_prune
from secateurs.runs.training import inherited_recipe, train_model
from secateurs.store import load_model, read_manifest, save_model

log = logging.getLogger("benchmark")
DEFAULT_RUNS = ["l1", "l2", "taylor", "bn_scale", "random:0", "random:1", "tp-magnitude",
                "tp-taylor"]  # fmt: skip


def run_dir(out: Path, name: str) -> Path:
    return out / name.replace(":", "-seed").replace("@", "-round")


def ours(name: str, args: argparse.Namespace, out: Path) -> None:
    """``method[:seed][@multiple]``, e.g. ``random:1`` or ``l1@16`` (widths in multiples of 16)."""
    name, _, multiple = name.partition("@")
    method, _, seed = name.partition(":")
    job = PruneJob(
        model=Path(args.model),
        method=method,
        out=out,
        target_macs=args.target_macs,
        data=args.data,
        finetune_epochs=args.epochs,
        finetune_lr=args.lr,
        train_subset=args.train_subset,
        seed=int(seed or 0),
        threads=args.threads,
        resume=out.is_dir() and any(out.iterdir()),
        strategy=args.strategy,
        round_to=int(multiple or args.round_to),
        latency_repeats=0,  # phase 2 times every model together
        latency_backends=("eager",),
        fold_bias=args.fold_bias,
        recalibrate_bn=args.recalibrate_bn,
        distill=args.distill,
        method_params=parse_method_params(args.method_param),
    )
    run_prune(job)


def tp_prune(model, importance, target: float, input_size, batches):
    """Torch-Pruning's MetaPruner as its users run it (uniform per-layer ratio, linear layers
    ignored), with the pruning ratio bisected until the MACs ratio meets the target. Returns the
    pruned copy, its MACs ratio and Torch-Pruning's pruning history."""
    example = torch.randn(1, *input_size)
    base = count_cost(model, input_size)["macs"]

    def attempt(ratio: float):
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
        history = pruner.DG.pruning_history()
        return candidate, count_cost(candidate, input_size)["macs"] / base, history

    low, high, best = 0.0, 0.95, None
    for _ in range(20):
        middle = (low + high) / 2
        result = attempt(middle)
        if result[1] > target:
            low = middle
        else:
            high, best = middle, result
        if best and abs(best[1] / target - 1) < 0.005:
            break
    assert best is not None
    return best


def torch_pruning(name: str, args: argparse.Namespace, out: Path) -> None:
    original, manifest = load_model(args.model)
    train = load_split(args.data, "train")
    if args.train_subset:  # the draw PruneJob makes for seed 0
        train = train.subset(args.train_subset, 0)
    data = LabelledData(train, load_split(args.data, "test"), manifest.mean, manifest.std)
    batches = data.sample(8 * 128, 128, 0)
    importance = (
        tp.importance.TaylorImportance()
        if name == "tp-taylor"
        else tp.importance.MagnitudeImportance(p=1)
    )
    before = accuracy(original, data)
    started = time.perf_counter()
    model, achieved, history = tp_prune(original, importance, args.target_macs,
                                        manifest.input_size, batches)  # fmt: skip
    pruning_seconds = time.perf_counter() - started  # the bisection's attempts included
    oneshot = accuracy(model, data)
    training = None
    if args.epochs:  # --epochs 0: one-shot models, for timing
        recipe = inherited_recipe(manifest, model=args.model, data=args.data, epochs=args.epochs,
                                  lr=args.lr, threads=args.threads)  # fmt: skip
        training = train_model(model.train(), data, recipe, out / "finetune")
    after = accuracy(model, data)
    rounds = [[[n, bool(o), [int(i) for i in idx]] for n, o, idx in history]]
    save_model(model, out, replace(manifest, pruning={"method": name, "rounds": rounds}))
    report = Report(
        settings=RunSettings(
            kind="prune",
            model=manifest.architecture,
            model_dir=str(args.model),
            pruning_seconds=round(pruning_seconds, 3),
            training_epochs=len(training.history) if training else 0,
            training_seconds=training.seconds if training else 0.0,
            latency_threads=args.threads,
        ),
        pruning=PruningRecord(
            method=name,
            target_ratio=args.target_macs,
            achieved_ratio=achieved,
        ),
        cost_before=cost(original, manifest.input_size),
        cost_after=cost(model, manifest.input_size),
        accuracy={"before": before, "oneshot": oneshot, "after": after},
    )
    write_report(report, out)


def measure_latency(args: argparse.Namespace, out: Path) -> None:
    """Dense and every pruned model timed in one interleaved loop; ratios against the dense."""
    dense, manifest = load_model(args.model)
    names, models = ["dense"], [dense]
    for name in args.runs:
        directory = run_dir(out, name)
        if (directory / "model.safetensors").exists():
            names.append(name)
            models.append(load_model(directory)[0])
    settings = LatencySettings((1, 64), threads=2, repeats=args.repeats)
    timings = compare(models, manifest.input_size, settings)
    result = {
        name: {str(batch): rows[i] for batch, rows in timings.items()}
        for i, name in enumerate(names)
    }
    if args.onnx:  # the same models exported and timed in onnxruntime, interleaved likewise
        from secateurs.measurement.onnx_runtime import compare_onnx

        timings = compare_onnx(models, manifest.input_size, settings)
        result["onnx"] = {
            name: {str(batch): rows[i] for batch, rows in timings.items()}
            for i, name in enumerate(names)
        }
    (out / "latency.json").write_text(json.dumps(result, indent=2))


def onnx_cells(timing: dict, reduction: float) -> str:
    b1, b64 = (timing.get(b, {}).get("ratio") for b in ("1", "64"))
    if not b64:
        return " - | - | - |"
    return f" {b1:.2f}x | {b64:.2f}x | {b64 / reduction:.2f} |"


def uncalibrated(report: Report) -> str:
    """With BatchNorm recalibration, the one-shot accuracy without it, in brackets."""
    value = report.top1("oneshot_uncalibrated")
    return "" if value is None else f" (without recalibration {value:.2f})"


def load_report(path: Path) -> Report:
    """``read_report``, and the report.json of a Torch-Pruning run by this script before the typed
    report: flat like version 1 but without the architecture, taken here from its manifest."""
    try:
        return read_report(path)
    except SecateursError:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "schema_version" in data or "model" in data:
            raise
        architecture = read_manifest(path.parent).architecture
        return Report.from_json({**data, "model": architecture}, str(path))


def summary(out: Path, names: list[str]) -> str:
    latency_path = out / "latency.json"
    latency = json.loads(latency_path.read_text()) if latency_path.exists() else {}
    lines = [
        "| method | MACs kept | params kept | top-1 one-shot | top-1 after FT | speed-up b1 | "
        "speed-up b64 | realisation b64 | ONNX speed-up b1 | ONNX speed-up b64 | "
        "ONNX realisation b64 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    randoms, before = [], None
    for name in names:
        path = run_dir(out, name) / "report.json"
        if not path.exists():
            continue
        r = load_report(path)
        before = r.top1("before")
        if name.startswith("random"):
            randoms.append(r.top1("after"))
        reduction = r.macs_reduction
        timing = latency.get(name, {})
        b1 = timing.get("1", {}).get("ratio")
        b64 = timing.get("64", {}).get("ratio")
        lines.append(
            f"| {name} | {1 / reduction:.3f} | {r.params_kept:.3f} | "
            f"{r.top1('oneshot'):.2f}{uncalibrated(r)} | "
            + (f"{r.top1('after'):.2f} | " if r.settings.training_epochs else "(latency only) | ")
            + (f"{b1:.2f}x | " if b1 else "- | ")
            + (f"{b64:.2f}x | {b64 / reduction:.2f} |" if b64 else "- | - |")
            + onnx_cells(latency.get("onnx", {}).get(name, {}), reduction)
        )
    if before is not None:
        lines += ["", f"Unpruned top-1: {before:.2f}%."]
    if len(randoms) > 1:
        lines.append(
            f"Random over {len(randoms)} seeds: mean {statistics.mean(randoms):.2f}%, "
            f"standard deviation {statistics.stdev(randoms):.2f}."
        )
    if latency:
        dense = latency["dense"]
        lines.append(
            f"Dense latency: {dense['1']['median']:.2f} ms at batch 1, "
            f"{dense['64']['median']:.2f} ms at batch 64 (2 threads, median of "
            f"{dense['64']['repeats']} interleaved repeats)."
        )
        if "onnx" in latency:
            dense = latency["onnx"]["dense"]
            lines.append(
                f"Dense latency in onnxruntime: {dense['1']['median']:.2f} ms at batch 1, "
                f"{dense['64']['median']:.2f} ms at batch 64."
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, epochs=10)
    parser.add_argument("--threads", type=int, default=2, help="for fine-tuning")
    parser.add_argument("--strategy", default="global")
    parser.add_argument("--round-to", type=int, default=1, help="channel multiple (exact: 1)")
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS)
    parser.add_argument(
        "--train-subset", type=int, help="fine-tune on a fixed draw of this many (per seed)"
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-baselines")
    parser.add_argument("--latency", action="store_true", help="phase 2: time all models")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--fold-bias", action="store_true", help="PruneJob.fold_bias (ours)")
    parser.add_argument(
        "--recalibrate-bn", type=int, default=0, help="PruneJob.recalibrate_bn (ours), batches"
    )
    parser.add_argument(
        "--distill", type=float, default=0.0, help="PruneJob.distill (ours): teacher's weight"
    )
    parser.add_argument(
        "--method-param", action="append", default=[], help="KEY=VALUE for our methods"
    )
    parser.add_argument("--onnx", action="store_true", help="phase 2: also time in onnxruntime")
    parser.add_argument("--summary", action="store_true", help="print the Markdown table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out = Path(args.out)
    if args.latency:
        measure_latency(args, out)
    elif not args.summary:
        torch.set_num_threads(args.threads)
        for name in args.runs[args.worker :: args.workers]:
            directory = run_dir(out, name)
            if (directory / "report.json").exists():
                continue
            log.info("=== %s", name)
            (torch_pruning if name.startswith("tp-") else ours)(name, args, directory)
    if args.summary or args.latency:
        print(summary(out, args.runs))


if __name__ == "__main__":
    main()
