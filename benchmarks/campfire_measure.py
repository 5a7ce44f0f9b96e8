"""Benchmark step 2 for docs/results/campfire.md: every finished run of benchmarks/campfire.py
(and the unpruned model, as ``dense``) timed against the unpruned model, interleaved, in eager
and onnxruntime at batch 1 and 64, and attacked with FGSM and PGD (2/255 and 8/255) on a seeded
draw of test images. Writes OUT/<run>/measured.json; run it alone on the machine.

    python benchmarks/campfire_measure.py --out runs/bench-campfire
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from secateurs.data import load_split
from secateurs.data.sources import default_cifar10_root
from secateurs.measurement.latency import LatencySettings
from secateurs.measurement.robustness import AttackSettings, robust_accuracy
from secateurs.pruning.campfire.compaction import time_sparse_path
from secateurs.report import read_report
from secateurs.runs.measuring import latency
from secateurs.store import load_model

log = logging.getLogger("benchmark")
BACKENDS = ("eager", "onnxruntime")


def measure(run: Path, base: Path, args: argparse.Namespace, images) -> dict:
    before, manifest = load_model(base)
    after, _ = load_model(run)
    report = read_report(run) if (run / "report.json").exists() else None
    reduction = report.cost_before.macs / report.cost_after.macs if report else 1.0
    kernel = report is not None and "kernel" in str(report.pruning.granularity)
    # the gathered form is slow to run: fewer rounds; attacked as its masked twin (same outputs)
    repeats = min(args.repeats, 5) if kernel else args.repeats
    settings = LatencySettings((1, 64), args.threads, repeats=repeats)
    timed = latency((before, after), manifest.input_size, settings, BACKENDS, reduction)
    found = {}
    if kernel:
        # compacted untimed while the machine was shared: time the dense form beside it
        dense_form, _ = load_model(run / "masked")
        timed_dense = latency((before, dense_form), manifest.input_size, settings, BACKENDS, 1.0)
        found["latency_dense_form"] = {
            b: {k: asdict(v) for k, v in rows.items()} for b, rows in timed_dense.items()
        }
    if report is not None and report.pruning.granularity in ("window", "unstructured"):
        # the only sparse path this CPU has, per layer, against the dense layer (eager)
        layers = list(report.pruning.details["campfire"]["layer_sparsity"])
        found["csr_path"] = time_sparse_path(after, manifest.input_size, layers, settings)
    attack = AttackSettings((2, 8), seed=0)
    attacked = load_model(run / "masked")[0] if kernel else after
    robust = robust_accuracy(attacked, images, manifest.mean, manifest.std, attack)
    found["latency"] = {b: {k: asdict(v) for k, v in rows.items()} for b, rows in timed.items()}
    found["robustness"] = robust
    found["settings"] = {"threads": args.threads, "repeats": args.repeats, "attacked": len(images)}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench-campfire")
    parser.add_argument("--model", default="benchmarks/baselines/resnet20-cifar10")
    parser.add_argument("--data", default=str(default_cifar10_root()))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--attack-images", type=int, default=1000)
    parser.add_argument("--again", action="store_true", help="re-measure measured runs")
    parser.add_argument("--all-seeds", action="store_true", help="not only each first seed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    out, base = Path(args.out), Path(args.model)
    images = load_split(args.data, "test").subset(args.attack_images, 0)
    runs = [base, *sorted(p for p in out.iterdir() if (p / "report.json").exists())]
    if not args.all_seeds:  # the first seed of each configuration: seeds differ in accuracy
        runs = [run for run in runs if "-seed" not in run.name]
    for run in runs:
        target = out / "dense" if run == base else run
        path = target / "measured.json"
        if path.exists() and not args.again:
            continue
        log.info("=== %s", target.name)
        target.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(measure(run, base, args, images), indent=2) + "\n")


if __name__ == "__main__":
    main()
