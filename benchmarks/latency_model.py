"""Validate the latency model: predicted against measured latency of random prunes.

For each model, backend and batch size: build (or read from the cache) the latency table, draw
``--prunes`` random plans (each prunable group keeps a uniform random fraction in [0.25, 1] of its
channels, chosen at random: exact widths, so most fall between the table's measured widths), and
time the dense model and every pruned copy in ONE interleaved loop (dense, p1, p2, ..., dense,
...). Reported per (model, backend, batch): Spearman's rank correlation of predicted and measured
milliseconds, and the median absolute relative error of the predicted ratio (pruned / dense)
against the measured one. The issue's goal: Spearman >= 0.9, median error <= 10%.

Each (model, backend, batch) row is written to ``--out`` as soon as it is measured, and a
second invocation with the same ``--out`` skips the rows already there, so an interrupted
validation resumes. ``--replay FILE`` predicts the recorded measurements again with the current
code (a changed fit, the same data; nothing timed). Timing needs an idle machine;
``--prunes 2 --repeats 2 --grid 4`` is a smoke test only.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import statistics
from pathlib import Path

import torch
from scipy.stats import spearmanr

from secateurs.latency import LatencySource, LatencySpec
from secateurs.measurement.backends import Timing
from secateurs.pruning import ChannelGraph, PruningPlan, remove_channels
from secateurs.store import load_model

log = logging.getLogger("benchmark")
MODELS = ["benchmarks/baselines/resnet20-cifar10", "benchmarks/baselines/resnet56-cifar10"]


def random_plans(graph: ChannelGraph, count: int, seed: int) -> list[PruningPlan]:
    generator = torch.Generator().manual_seed(seed)
    plans = []
    for _ in range(count):
        removals = {}
        for group in graph.prunable_groups:
            keep = max(
                1, round(group.size * (0.25 + 0.75 * float(torch.rand(1, generator=generator))))
            )
            order = torch.randperm(group.size, generator=generator)
            removals[group.root] = sorted(order[: group.size - keep].tolist())
        plans.append(PruningPlan(removals))
    return plans


def validate(model_dir: str, spec: LatencySpec, prunes: int, seed: int) -> dict:
    model, manifest = load_model(model_dir)
    model.eval()
    graph = ChannelGraph(model, manifest.input_size)
    source = LatencySource(spec)
    latency = source.model_for(graph)
    plans = random_plans(graph, prunes, seed)
    predicted = [latency.predict_plan(graph, plan) for plan in plans]
    pruned = []
    for plan in plans:
        copy_ = copy.deepcopy(model)
        remove_channels(ChannelGraph(copy_, manifest.input_size), plan)
        pruned.append(copy_.eval())
    shape = (spec.batch, *manifest.input_size)
    timing = Timing(spec.threads, warmup=5, repeats=spec.model_repeats)
    measured = source.backend.time([(m, shape) for m in [model, *pruned]], timing)
    dense, measured = measured[0], measured[1:]
    errors = [
        abs((p / latency.dense_ms) / (m / dense) - 1)
        for p, m in zip(predicted, measured, strict=True)
    ]
    return {
        "model": manifest.architecture,
        "backend": spec.backend,
        "batch": spec.batch,
        "threads": spec.threads,
        "prunes": prunes,
        "seed": seed,
        "dense_ms_measured": dense,
        "dense_ms_table": latency.dense_ms,
        "spearman": float(spearmanr(predicted, measured).statistic) if prunes > 1 else None,
        "median_abs_error": statistics.median(errors),
        "predicted_ms": predicted,
        "measured_ms": measured,
    }


def replay(row: dict, cache: Path | None) -> dict:
    """``row``'s measured latencies against what the current code predicts for the same plans,
    from the cached tables and calibration points (nothing is timed): a change to the fit is
    checked on the measurements it was not fitted on."""
    model, manifest = load_model(row["model_dir"])
    graph = ChannelGraph(model.eval(), manifest.input_size)
    spec = LatencySpec(row["backend"], row["batch"], row["threads"], cache=cache)
    latency = LatencySource(spec).model_for(graph)
    plans = random_plans(graph, row["prunes"], row.get("seed", 0))
    predicted = [latency.predict_plan(graph, plan) for plan in plans]
    measured, dense = row["measured_ms"], row["dense_ms_measured"]
    pairs = zip(predicted, measured, strict=True)
    errors = [abs((p / latency.dense_ms) / (m / dense) - 1) for p, m in pairs]
    return {**row, "predicted_ms": predicted, "dense_ms_table": latency.dense_ms,
            "spearman": float(spearmanr(predicted, measured).statistic),
            "median_abs_error": statistics.median(errors), "replayed": True}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "eager"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--prunes", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (tables and models)")
    parser.add_argument("--grid", type=int, default=16, help="measured widths per dimension")
    parser.add_argument("--cache", type=Path, default=None, help="latency table directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/latency-model/validation.json"))
    parser.add_argument("--summary", action="store_true", help="only print --out's table")
    parser.add_argument(
        "--replay", type=Path, help="write --out's measurements, predicted again, to this file"
    )
    args = parser.parse_args()
    if args.summary:
        print(table(json.loads(args.out.read_text())["rows"]))
        return
    if args.replay:
        rows = [replay(row, args.cache) for row in json.loads(args.out.read_text())["rows"]]
        args.replay.write_text(json.dumps({"replay_of": str(args.out), "rows": rows}, indent=1))
        print(table(rows))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    rows = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    done = {(row["model_dir"], row["backend"], row["batch"]) for row in rows}
    for model_dir in args.models:
        for backend in args.backends:
            for batch in args.batches:
                if (model_dir, backend, batch) in done:
                    continue  # measured by an earlier, interrupted invocation
                spec = LatencySpec(backend, batch, args.threads, args.repeats, args.repeats,
                                   args.grid, args.cache)  # fmt: skip
                row = validate(model_dir, spec, args.prunes, args.seed)
                log.info("%s %s b%d: Spearman %s, median |error| %.1f%%", row["model"], backend,
                         batch, row["spearman"], 100 * row["median_abs_error"])  # fmt: skip
                rows.append({"model_dir": model_dir, **row})
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                "rows": rows}, indent=1) + "\n")  # fmt: skip
    print(table(rows))


def table(rows: list[dict]) -> str:
    lines = ["| model | backend | batch | prunes | dense ms (this run) | Spearman | "
             "median abs. error |", "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in rows:
        spearman = "-" if row["spearman"] is None else f"{row['spearman']:.3f}"
        lines.append(f"| {row['model']} | {row['backend']} | {row['batch']} | {row['prunes']} | "
                     f"{row['dense_ms_measured']:.2f} | {spearman} | "
                     f"{100 * row['median_abs_error']:.1f}% |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
