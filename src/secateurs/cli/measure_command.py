"""``secateurs measure``: MACs, parameters and CPU latency of a saved model."""

from __future__ import annotations

import argparse
import copy
import json

from secateurs.cli.parser import add_command, positive_int
from secateurs.device import resolve_device
from secateurs.measurement import LatencySettings, count_cost, measure_latency
from secateurs.measurement.latency import synchronised
from secateurs.measurement.machine import describe, machine_info
from secateurs.store import load_model

DESCRIPTION = """Count MACs and parameters and time CPU inference of a saved model.

example:
  secateurs measure runs/r20/model --batch-sizes 1 64 --threads 2 --json
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "measure", "MACs, parameters, latency", DESCRIPTION)
    parser.add_argument("model", help="a saved model directory")
    parser.add_argument(
        "--batch-sizes", type=positive_int, nargs="+", default=[1, 64], help="batch sizes to time"
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="CPU threads for timing")
    parser.add_argument(
        "--repeats", type=positive_int, default=30, help="timed runs per batch size (median)"
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="time in the channels-last memory layout"
    )
    parser.add_argument("--onnx", action="store_true", help="also time it in onnxruntime")
    parser.add_argument(
        "--device", default="cpu", help="time on cpu, cuda, cuda:N or mps (a GPU synchronises)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model, manifest = load_model(args.model, device=resolve_device(args.device))
    cost = count_cost(model, manifest.input_size)
    settings = LatencySettings(
        tuple(args.batch_sizes),
        args.threads,
        repeats=args.repeats,
        channels_last=args.channels_last,
    )
    latency = measure_latency(model, manifest.input_size, settings)
    result = {
        **cost,
        "latency_ms": {str(batch): round(row["median"], 3) for batch, row in latency.items()},
        "latency_iqr_ms": {str(batch): round(row["iqr"], 3) for batch, row in latency.items()},
        "threads": args.threads,
        "device": args.device,
        "synchronised": synchronised(model),  # each timed run waited for the GPU
        "machine": machine_info(args.threads),
    }
    if args.onnx:
        from secateurs.measurement.onnx_runtime import compare_onnx

        onnx = compare_onnx([copy.deepcopy(model).cpu()], manifest.input_size, settings)
        result["onnx_latency_ms"] = {
            str(b): round(rows[0]["median"], 3) for b, rows in onnx.items()
        }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"MACs {cost['macs'] / 1e6:.2f} M   parameters {cost['params'] / 1e6:.3f} M")
        waited = " on " + args.device + ", synchronised" if synchronised(model) else ""
        for batch, row in latency.items():
            print(f"batch {batch:>4}: {row['median']:.2f} ms (IQR {row['iqr']:.2f}){waited}")
        for batch, value in result.get("onnx_latency_ms", {}).items():
            print(f"batch {batch:>4}: {value:.2f} ms in onnxruntime")
        print(describe(result["machine"]))
    return 0
