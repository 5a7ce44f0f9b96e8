"""Benchmark: SPP's compact column convolution against the dense convolution it replaces.

For each ResNet-20 CIFAR convolution shape (16, 32 and 64 channels at 32, 16 and 8 pixels) and
25/50/75% of the im2col columns kept (a random set, as SPP leaves), times the dense 3x3
convolution with the pruned columns at zero and :class:`CompactConv2d`, interleaved
(:func:`secateurs.measurement.latency.compare`), and prints the speed-up dense / compact (> 1: the
compact module is faster) with the interquartile ranges, in PyTorch eager and optionally in
onnxruntime.

    python benchmarks/spp_compact_conv.py --threads 2 --batches 1 64 --repeats 50 --onnx
    python benchmarks/spp_compact_conv.py --threads 1 --batches 2 --repeats 3 --quick   # smoke
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from secateurs.measurement.latency import LatencySettings, compare
from secateurs.pruning.compaction.compact_conv import CompactConv2d

SHAPES = [(16, 32), (32, 16), (64, 8)]  # (channels, feature map side): ResNet-20's stages
KEPT = (0.25, 0.5, 0.75)


def random_columns(channels: int, kept: float, seed: int, pattern: str) -> torch.Tensor:
    """A random (C, 3, 3) keep mask with round(kept * 9C) columns kept (``pattern`` "column"),
    or round(kept * C) whole input channels ("input_channel")."""
    generator = torch.Generator().manual_seed(seed)
    if pattern == "input_channel":
        order = torch.randperm(channels, generator=generator)
        keep = torch.zeros(channels, dtype=torch.bool)
        keep[order[: round(kept * channels)]] = True
        return keep.view(channels, 1, 1).expand(channels, 3, 3).clone()
    total = channels * 9
    order = torch.randperm(total, generator=generator)
    keep = torch.zeros(total, dtype=torch.bool)
    keep[order[: round(kept * total)]] = True
    return keep.view(channels, 3, 3)


def pair(channels: int, kept: float, seed: int, pattern: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
    keep = random_columns(channels, kept, seed, pattern)
    with torch.no_grad():
        conv.weight.mul_(keep)
    return conv, CompactConv2d(conv, keep).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--onnx", action="store_true", help="also time in onnxruntime")
    parser.add_argument("--pattern", choices=["column", "input_channel"], default="column")
    parser.add_argument("--quick", action="store_true", help="one shape only (smoke test)")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    settings = LatencySettings(args.batches, args.threads, args.warmup, args.repeats)
    rows = []
    for channels, side in SHAPES[:1] if args.quick else SHAPES:
        for kept in KEPT:
            dense, compact = pair(channels, kept, channels, args.pattern)
            runtimes = {"eager": compare}
            if args.onnx:
                from secateurs.measurement.onnx_runtime import compare_onnx

                runtimes["onnxruntime"] = compare_onnx
            for runtime, timer in runtimes.items():
                results = timer([dense, compact], (channels, side, side), settings)
                for batch, (dense_row, compact_row) in results.items():
                    row = {
                        "runtime": runtime,
                        "channels": channels,
                        "side": side,
                        "kept": kept,
                        "batch": batch,
                        "dense_ms": round(dense_row["median"], 4),
                        "dense_iqr": round(dense_row["iqr"], 4),
                        "compact_ms": round(compact_row["median"], 4),
                        "compact_iqr": round(compact_row["iqr"], 4),
                        "speedup": round(compact_row["ratio"], 3),
                    }
                    rows.append(row)
                    print(
                        f"{runtime:11s} C={channels:3d} {side:2d}px kept {kept:.0%} "
                        f"batch {batch:3d}: "
                        f"dense {row['dense_ms']:.3f} ms, compact {row['compact_ms']:.3f} ms, "
                        f"speed-up {row['speedup']:.2f}"
                    )
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"settings": vars(args), "rows": rows}, file, indent=2)


if __name__ == "__main__":
    main()
