"""Does secateurs' timing agree with a plain harness? Times a dense and a pruned model (saved
model directories) in onnxruntime two ways, alone on the machine, and prints both speed-ups:

- **plain**: the models exported with ``torch.onnx.export`` by this script, one plain
  onnxruntime session each (2 threads, one inter-op thread, spinning off), 5 warm rounds, then
  25 rounds interleaved A B A B, each timed run alone; the ratio of medians. Nothing of
  secateurs' timing code is used.
- **secateurs**: the one timing stack the reports, the compaction decisions and the latency
  allocation use (:func:`secateurs.measurement.onnx_runtime.compare_onnx`, same threads and rounds).

Each way runs ``--trials`` times, alternating (plain, secateurs, plain, ...), so a slow spell of
the machine hits both. Run it alone; nothing else may compute meanwhile:

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/timing_check.py \\
        benchmarks/baselines/resnet20-cifar10 runs/r20-fast --batches 1 64 --trials 3
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from secateurs.measurement.latency import LatencySettings
from secateurs.measurement.machine import describe, machine_info
from secateurs.measurement.onnx_runtime import compare_onnx
from secateurs.store import load_model


def plain_graph(model: torch.nn.Module, input_size: list[int]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(), torch.randn(1, *input_size), buffer, input_names=["x"],
            dynamic_axes={"x": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


def plain_session(graph: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def plain_ratio(
    graphs: list[bytes], shape: list[int], threads: int, rounds: int, warm_each: bool = False
) -> float:
    """Median dense time / median pruned time, plain onnxruntime, interleaved; ``warm_each``:
    each timed run right after an untimed run of the same model (secateurs' rule)."""
    sessions = [plain_session(graph, threads) for graph in graphs]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(5):
        for session in sessions:
            session.run(None, {"x": x})
    times: list[list[float]] = [[], []]
    for _ in range(rounds):
        for index, session in enumerate(sessions):
            if warm_each:
                session.run(None, {"x": x})
            started = time.perf_counter()
            session.run(None, {"x": x})
            times[index].append(time.perf_counter() - started)
    return statistics.median(times[0]) / statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dense")
    parser.add_argument("pruned")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--warm-each", action="store_true", help="plain: an untimed run before each timed one"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    (dense, manifest), (pruned, _) = load_model(args.dense), load_model(args.pruned)
    size = manifest.input_size
    graphs = [plain_graph(dense, size), plain_graph(pruned, size)]
    found: dict[str, dict[str, list[float]]] = {}
    for batch in args.batches:
        rows = found.setdefault(str(batch), {"plain": [], "secateurs": []})
        settings = LatencySettings((batch,), args.threads, warmup=5, repeats=args.rounds)
        for _ in range(args.trials):
            shape = [batch, *size]
            rows["plain"].append(
                plain_ratio(graphs, shape, args.threads, args.rounds, args.warm_each)
            )
            timed = compare_onnx([dense, pruned], size, settings)
            rows["secateurs"].append(timed[batch][1]["ratio"])
        plain, ours = statistics.median(rows["plain"]), statistics.median(rows["secateurs"])
        print(
            f"batch {batch}: plain {plain:.3f}x {[round(r, 3) for r in rows['plain']]}, "
            f"secateurs {ours:.3f}x {[round(r, 3) for r in rows['secateurs']]}, "
            f"secateurs / plain {ours / plain:.3f}"
        )
    print(describe(machine_info(args.threads)))
    if args.out:
        args.out.write_text(
            json.dumps({"batches": found, "machine": machine_info(args.threads)}) + "\n"
        )


if __name__ == "__main__":
    main()
