"""Benchmark (issue 26): prune to a measured latency target, and compare at equal measured latency.

Per model and latency target R (a fraction of the dense model's latency in onnxruntime at batch
``--batch``), with ``--seeds`` seeds each:

- ``latency``: l1 scores, ``--target-latency R`` (the latency table's efficient widths, then
  measured and corrected); ``latency@16``: the same at efficient widths that are multiples of 16;
- ``gradual``: ``taylor-gradual --target-latency R`` (after HALP: steps over the first half of the
  same epochs, each measured, the last corrected), trained as long as the others fine-tune;
- ``l1``, ``taylor`` (exact widths), ``l1@16``, ``taylor@16``, ``random@16`` (the control;
  widths in multiples of 16) and
  ``tp-magnitude`` (Torch-Pruning's MetaPruner, uniform ratio, L1), each MACs-targeted: its MACs
  target is bisected until the pruned model's measured latency ratio (interleaved with the dense
  model, same backend and batch) is within 3% of R. A comparator that cannot get that fast at
  any MACs target is recorded as such and not trained.

Every run keeps the library's default channel floor (1/8 of a group, 1/4 at the stem and the
classifier's input; ``--min-channels`` on top): without a floor the latency allocation cut
ResNet-20's first residual stream to 1 of 16 channels at R = 0.5, batch 64 (its channels save
the most milliseconds at the largest maps). Every run fine-tunes the same epochs on
the same images (a PruneJob: report.json and model in
OUT/<model>-R<R>-<run>-s<seed>/; a run with a report.json is skipped, so the benchmark resumes).
``--time`` times the dense model and every pruned one in ONE interleaved loop (onnxruntime and
eager, batch 1 and 64) into OUT/timing.json; ``--int8`` exports the dense and latency-targeted
models, quantizes them (onnxruntime static, calibrated on 512 training images), scores and
times them interleaved into OUT/int8.json; ``--table`` prints the tables. Timing needs the
machine to itself; training does not.

    python benchmarks/latency_targets.py --models benchmarks/baselines/resnet20-cifar10 \\
        --targets 0.5 0.33 --epochs 10 --train-subset 10000 --out runs/latency-targets
    python benchmarks/latency_targets.py --out runs/latency-targets --time --int8 --table
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from secateurs import api
from secateurs.data.sources import default_cifar10_root
from secateurs.errors import SecateursError
from secateurs.measurement.backends import Timing, create_backend
from secateurs.runs.prune_job import PruneJob
from secateurs.runs.prune_run import run_prune
from secateurs.runs.training_time_run import TrainingJob, run_training_time
from secateurs.store import load_model

log = logging.getLogger("benchmark")
COMPARATORS = ["l1", "taylor", "l1@16", "taylor@16", "random@16"]
LATENCY_RUNS = ("latency", "gradual")  # pruned to the target by the library itself
TOLERANCE = 0.03


def measured_ratio(dense, pruned, input_size, backend: str, batch: int) -> float:
    shape = (batch, *input_size)
    before, after = create_backend(backend).time(
        [(dense, shape), (pruned, shape)], Timing(threads=2, warmup=3, repeats=20)
    )
    return after / before


def bisect_latency(args, model_dir: str, ratio: float, name: str, prune_at: Callable,
                   low: float, steps: int) -> float | None:  # fmt: skip
    """The MACs target at which ``prune_at(dense, manifest, macs)`` (a pruned copy, or None when
    the pruner cannot go that low) measures a latency ratio within the tolerance of ``ratio``;
    None when no MACs target in ``steps`` bisection steps over [low, 1] gets within twice it."""
    dense, manifest = load_model(model_dir)
    high, best = 1.0, None
    for _ in range(steps):
        macs = (low + high) / 2
        pruned = prune_at(dense, manifest, macs)
        if pruned is None:
            low = macs
            continue
        found = measured_ratio(dense, pruned, manifest.input_size, args.backend, args.batch)
        log.info("  %s MACs %.3f -> latency ratio %.3f", name, macs, found)
        if best is None or abs(found / ratio - 1) < abs(best[1] / ratio - 1):
            best = (macs, found)
        if abs(found / ratio - 1) <= TOLERANCE:
            return macs
        low, high = (low, macs) if found > ratio else (macs, high)
    return best[0] if best and abs(best[1] / ratio - 1) <= 2 * TOLERANCE else None


def bisect_macs(args, model_dir: str, method: str, round_to: int, ratio: float) -> float | None:
    """:func:`bisect_latency` for one of our methods, widths in multiples of ``round_to``."""
    manifest = load_model(model_dir)[1]
    data = api.load_data(args.data, manifest=manifest, train_subset=1024, test_subset=128)

    def prune_at(dense, manifest, macs: float):
        example = torch.zeros(1, *manifest.input_size)
        try:
            return api.prune(dense, method=method, example_input=example, target_macs=macs,
                             data=data, round_to=round_to,
                             min_channels=args.min_channels).model  # fmt: skip
        except SecateursError:
            return None  # the allocator cannot go this low

    return bisect_latency(args, model_dir, ratio, f"{method}@{round_to}", prune_at, 0.02, 10)


def bisect_tp(args, model_dir: str, ratio: float) -> float | None:
    """:func:`bisect_latency` for Torch-Pruning's MetaPruner (uniform ratio, L1 magnitude), whose
    own ratio is bisected to each MACs target by ``pruning_baselines.tp_prune``."""
    import torch_pruning as tp

    from pruning_baselines import tp_prune

    def prune_at(dense, manifest, macs: float):
        importance = tp.importance.MagnitudeImportance(p=1)
        return tp_prune(dense, importance, macs, manifest.input_size, [])[0]

    return bisect_latency(args, model_dir, ratio, "tp-magnitude", prune_at, 0.05, 8)


def train_tp(args, model_dir: str, macs: float, directory: Path) -> None:
    """Torch-Pruning's pruner at ``macs``, fine-tuned like every other run (its report.json)."""
    from pruning_baselines import torch_pruning

    settings = argparse.Namespace(model=model_dir, data=args.data, target_macs=macs,
                                  epochs=args.epochs, lr=0.01, threads=args.threads,
                                  train_subset=args.train_subset)  # fmt: skip
    torch_pruning("tp-magnitude", settings, directory)


def run_name(model_dir: str, ratio: float, run: str, seed: int) -> str:
    return f"{Path(model_dir).name}-R{ratio:g}-{run.replace('@', '-round')}-s{seed}"


def prune_all(args) -> None:
    out = Path(args.out)
    targets_path = out / "macs-targets.json"
    found = json.loads(targets_path.read_text()) if targets_path.exists() else {}
    for model_dir in args.models:
        for ratio in args.targets:
            for run in [*args.latency_runs, *args.comparators]:
                key = f"{Path(model_dir).name}-R{ratio:g}-{run}"
                method, _, multiple = run.partition("@")
                latency = method in LATENCY_RUNS
                if not latency and key not in found:
                    log.info("=== bisecting %s", key)
                    found[key] = (
                        bisect_tp(args, model_dir, ratio)
                        if run == "tp-magnitude"
                        else bisect_macs(args, model_dir, method, int(multiple or 1), ratio)
                    )
                    out.mkdir(parents=True, exist_ok=True)
                    targets_path.write_text(json.dumps(found, indent=1) + "\n")
                if not latency and found[key] is None:
                    log.info("%s cannot reach a latency ratio of %g: not trained", key, ratio)
                    continue
                for seed in range(args.seeds):
                    directory = out / run_name(model_dir, ratio, run, seed)
                    if (directory / "report.json").exists():
                        continue
                    log.info("=== %s", directory.name)
                    if run == "tp-magnitude":
                        train_tp(args, model_dir, found[key], directory)
                        break  # one seed: Torch-Pruning's run takes none
                    try:
                        if run == "gradual":
                            run_training_time(gradual_job(args, model_dir, ratio, seed, directory))
                            continue
                        run_prune(job(args, model_dir, run, ratio, found.get(key), seed, directory))
                    except SecateursError as error:  # recorded, and the other runs go on
                        log.warning("%s: %s", directory.name, error)
                        failed = out / "failed.json"
                        record = json.loads(failed.read_text()) if failed.exists() else {}
                        failed.write_text(json.dumps({**record, directory.name: str(error)}) + "\n")
                        break


def job(args, model_dir: str, run: str, ratio: float, macs, seed: int, out: Path) -> PruneJob:
    method, _, multiple = run.partition("@")
    latency = method == "latency"
    return PruneJob(
        model=Path(model_dir),
        method="l1" if latency else method,
        out=out,
        target_latency=ratio if latency else None,
        target_macs=None if latency else macs,
        round_to=int(multiple or 1),
        min_channels=args.min_channels,
        backend=args.backend,
        latency_batch=args.batch,
        data=args.data,
        finetune_epochs=args.epochs,
        train_subset=args.train_subset,
        seed=seed,
        threads=args.threads,
        resume=out.is_dir() and any(out.iterdir()),
        latency_repeats=0,  # --time times every model together
    )


def gradual_job(args, model_dir: str, ratio: float, seed: int, out: Path) -> TrainingJob:
    """Gradual latency pruning (``taylor-gradual --target-latency``): its steps over the first
    half of the same epochs of training the one-shot runs fine-tune for."""
    return TrainingJob.for_method(
        "taylor-gradual",
        model=Path(model_dir),
        out=out,
        data=args.data,
        epochs=args.epochs,
        train_subset=args.train_subset,
        seed=seed,
        threads=args.threads,
        resume=out.is_dir() and any(out.iterdir()),
        latency_repeats=0,  # its steps time with the latency source; --time times the result
        target_latency=ratio,
        backend=args.backend,
        latency_batch=args.batch,
        min_channels=args.min_channels,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["benchmarks/baselines/resnet20-cifar10"])
    parser.add_argument("--data", default=str(default_cifar10_root()))
    parser.add_argument("--targets", nargs="+", type=float, default=[0.5, 0.33])
    parser.add_argument("--comparators", nargs="*", default=COMPARATORS)
    parser.add_argument(
        "--latency-runs",
        nargs="*",
        default=["latency", "gradual"],
        help="latency (one-shot knapsack), latency@16 (its widths in multiples of 16), gradual "
        "(taylor-gradual --target-latency)",
    )
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument(
        "--min-channels",
        type=int,
        default=1,
        help="every run's --min-channels (the default floor of 1/8 of a group, 1/4 at the stem "
        "and the classifier's input, applies to every run alike)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds in --time/--int8")
    parser.add_argument("--out", default="runs/latency-targets")
    parser.add_argument("--time", action="store_true", help="time every model, interleaved")
    parser.add_argument("--int8", action="store_true", help="quantize and time the latency runs")
    parser.add_argument("--table", action="store_true", help="print the tables")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from latency_targets_report import int8_all, tables, time_all

    if not (args.time or args.int8 or args.table):
        torch.set_num_threads(args.threads)
        prune_all(args)
    if args.time:
        time_all(Path(args.out), args.repeats)
    if args.int8:
        int8_all(Path(args.out), args.data, args.repeats)
    if args.table:
        print(tables(Path(args.out)))


if __name__ == "__main__":
    main()
