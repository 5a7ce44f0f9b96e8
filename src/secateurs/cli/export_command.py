"""``secateurs export``: a saved model as a checked ONNX file (BatchNorm folded, dynamic batch),
optionally with an int8 copy quantised by onnxruntime."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from secateurs.cli.parser import add_command, positive_int
from secateurs.errors import SecateursError

log = logging.getLogger(__name__)

DESCRIPTION = """Export a saved model to ONNX for deployment: BatchNorm folded into the layer
before it, a dynamic batch dimension, the graph checked by onnx's checker, and onnxruntime's
outputs compared with PyTorch's on real test images (max relative difference <= 1e-4) before the
file is written; a failed check writes nothing. --int8 also writes OUT.int8.onnx, quantised
statically by onnxruntime on training images, and prints its top-1 and latency beside fp32's
(timed interleaved in onnxruntime).

examples:
  secateurs export runs/r20-taylor -o runs/r20-taylor.onnx --data ../shared/data/cifar10
  secateurs export runs/r20-taylor -o r20.onnx --data ../shared/data/cifar10 --int8
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "export", "export a model to ONNX (checked)", DESCRIPTION)
    parser.add_argument("model", help="a saved model directory")
    parser.add_argument("-o", "--out", required=True, type=Path, help="the .onnx file to write")
    parser.add_argument(
        "--data", help="data set root: test images for the check (without it: random images)"
    )
    parser.add_argument(
        "--check-images", type=positive_int, default=64, help="test images the check runs"
    )
    parser.add_argument("--int8", action="store_true", help="also write a static int8 copy")
    parser.add_argument(
        "--calibration-images",
        type=positive_int,
        default=256,
        help="training images int8 calibration reads",
    )
    parser.add_argument(
        "--test-subset", type=positive_int, help="int8: compare top-1 on this many test images"
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="CPU threads for timing")
    parser.add_argument(
        "--repeats", type=positive_int, default=30, help="int8: timed runs per batch size"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--force", action="store_true", help="overwrite OUT (and its .int8.onnx) if they exist"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from secateurs.measurement.export import write_checked
    from secateurs.store import load_model

    if args.out.suffix != ".onnx":
        raise SecateursError(f"-o takes a .onnx file, not {args.out}")
    if args.int8 and not args.data:
        raise SecateursError(
            "--int8 calibrates on training images and scores on test images: pass --data"
        )
    written = (
        [args.out, args.out.with_name(args.out.stem + ".int8.onnx")] if args.int8 else [args.out]
    )
    existing = [str(path) for path in written if path.exists()]
    if existing and not args.force:
        raise SecateursError(f"{', '.join(existing)} exists; choose another -o (or --force)")
    model, manifest = load_model(args.model)
    data = _data(args, manifest)
    images = _check_images(args, manifest, data)
    export = write_checked(model, manifest.input_size, images, args.out)
    result = {
        "path": str(export.path),
        "folded_batchnorms": export.folded_batchnorms,
        "max_rel_diff": export.max_rel_diff,
        "check_images": export.check_images,
    }
    if args.int8:
        result["int8"] = _int8(args, manifest, data)
    print(json.dumps(result) if args.json else _text(result))
    return 0


def _data(args: argparse.Namespace, manifest):
    if not args.data:
        return None
    from secateurs.api import load_data

    return load_data(args.data, manifest=manifest, test_subset=args.test_subset)


def _check_images(args: argparse.Namespace, manifest, data) -> torch.Tensor:
    if data is None:
        log.warning("no --data: the exported model is checked on random images")
        generator = torch.Generator().manual_seed(0)
        return torch.randn(args.check_images, *manifest.input_size, generator=generator)
    sample = data.test.subset(min(args.check_images, len(data.test)), 0)
    return torch.cat([images for images, _ in data.batches(sample)])


def _int8(args: argparse.Namespace, manifest, data) -> dict:
    from secateurs.measurement.export import quantize_int8
    from secateurs.measurement.latency import LatencySettings
    from secateurs.measurement.onnx_runtime import compare_graphs, onnx_top1

    target = args.out.with_name(args.out.stem + ".int8.onnx")
    calibration = data.sample(args.calibration_images, 32, 0)
    quantize_int8(args.out, target, (images.numpy() for images, _ in calibration))
    graphs = [args.out.read_bytes(), target.read_bytes()]
    figures: dict = {"path": str(target)}
    for name, graph in zip(("fp32", "int8"), graphs, strict=True):
        figures[f"top1_{name}"] = onnx_top1(graph, data, args.threads)
    settings = LatencySettings((1, 64), args.threads, repeats=args.repeats)
    timed = compare_graphs(graphs, manifest.input_size, settings)
    figures["latency"] = {
        str(batch): {
            "fp32_ms": round(rows[0]["median"], 4),
            "int8_ms": round(rows[1]["median"], 4),
            "speedup": round(rows[1]["ratio"], 4),
        }
        for batch, rows in timed.items()
    }
    return figures


def _text(result: dict) -> str:
    lines = [
        f"wrote {result['path']}: {result['folded_batchnorms']} BatchNorms folded, "
        f"max relative difference {result['max_rel_diff']:.1e} on {result['check_images']} images"
    ]
    int8 = result.get("int8")
    if int8:
        lines.append(
            f"wrote {int8['path']}: top-1 {int8['top1_int8']:.2f}% (fp32 {int8['top1_fp32']:.2f}%)"
        )
        for batch, row in int8["latency"].items():
            lines.append(
                f"  batch {batch}: fp32 {row['fp32_ms']:.3f} ms, int8 "
                f"{row['int8_ms']:.3f} ms ({row['speedup']:.2f}x, interleaved)"
            )
    return "\n".join(lines)
