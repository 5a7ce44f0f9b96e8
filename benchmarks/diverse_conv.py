"""Benchmark: SG-CNN's diverse group convolution, both execution forms, against the dense conv.

For each ResNet-20 CIFAR 3x3 convolution shape (16, 32 and 64 channels at 32, 16 and 8 pixels),
G groups and a share of the connections kept, draws a random SG-CNN-like grouping (groups of
unequal sizes, input sets of unequal sizes that overlap), and times the dense convolution with
the pruned connections at zero, the ``grouped`` form and the ``per_group`` form of
:class:`DiverseGroupConv2d`, interleaved (A B C A B C ...), in PyTorch eager
(:func:`secateurs.measurement.latency.compare`) and in onnxruntime
(:func:`secateurs.measurement.onnx_runtime.compare_onnx`). Prints a markdown table of speed-ups,
dense median / form median (> 1: the form is faster than the dense convolution).

    python benchmarks/diverse_conv.py --threads 2 --batches 1 64 --repeats 50
    python benchmarks/diverse_conv.py --repeats 3 --warmup 1 --batches 2    # smoke test
"""

from __future__ import annotations

import argparse
import itertools

import torch
from torch import nn

from secateurs.measurement.latency import LatencySettings, compare
from secateurs.pruning.compaction.diverse_conv import DiverseGroupConv2d

SHAPES = [(64, 8), (32, 16), (16, 32)]  # (channels, feature map side): ResNet-20's stages
GROUPS = (4, 8, 16)
KEPT = (0.25, 0.5, 0.75)
FORMS = ("grouped", "per_group")


def random_grouping(
    channels: int, groups: int, kept: float, seed: int
) -> tuple[list[int], torch.Tensor]:
    """Labels of ``groups`` groups of random, unequal sizes, and a keep matrix in which each group
    reads a random set of about ``kept`` x channels (0.5x to 1.5x of it, scaled so that the
    share of kept connections is close to ``kept``)."""
    generator = torch.Generator().manual_seed(seed)
    cuts = torch.randperm(channels - 1, generator=generator)[: groups - 1] + 1
    bounds = [0, *sorted(cuts.tolist()), channels]
    sizes = [bounds[g + 1] - bounds[g] for g in range(groups)]  # each >= 1
    spread = 0.5 + torch.rand(groups, generator=generator)
    shares = spread * kept * channels * channels / float((spread * torch.tensor(sizes)).sum())
    reads = shares.round().clamp(1, channels).long().tolist()
    order = torch.randperm(channels, generator=generator).tolist()
    labels = [0] * channels
    keep = torch.zeros(channels, channels, dtype=torch.bool)
    for group, (start, end) in enumerate(itertools.pairwise(bounds)):
        members = order[start:end]  # interleaved filter indices
        inputs = torch.randperm(channels, generator=generator)[: reads[group]]
        for i in members:
            labels[i] = group
            keep[i, inputs] = True
    return labels, keep


def balanced_grouping(
    channels: int, groups: int, kept: float, seed: int
) -> tuple[list[int], torch.Tensor]:
    """The best case of balanced clustering: ``groups`` groups of equal size, each reading its
    own random set of exactly round(kept x channels) inputs, so the grouped form needs no
    padding."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(channels, generator=generator).tolist()
    size, reads = channels // groups, max(1, round(kept * channels))
    labels = [0] * channels
    keep = torch.zeros(channels, channels, dtype=torch.bool)
    for group in range(groups):
        inputs = torch.randperm(channels, generator=generator)[:reads]
        for i in order[group * size : (group + 1) * size]:
            labels[i] = group
            keep[i, inputs] = True
    return labels, keep


def modules(
    channels: int, groups: int, kept: float, seed: int, balanced: bool = False
) -> list[nn.Module]:
    """[dense masked conv, grouped form, per-group form], equal weights."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    grouping = balanced_grouping if balanced else random_grouping
    labels, keep = grouping(channels, groups, kept, seed)
    diverse = [DiverseGroupConv2d.from_masked(conv, labels, keep, form).eval() for form in FORMS]
    return [diverse[0].masked_conv().eval(), *diverse]


def time_forms(
    shape: tuple[int, int], groups: int, kept: float, settings: LatencySettings, args
) -> list[dict]:
    """One row per batch size: the shape, the grouping's actual kept share and padding, and the
    speed-up of each form in eager (and onnxruntime)."""
    channels, side = shape
    onnx = not args.no_onnx
    seed = channels + groups
    dense, grouped, per_group = modules(channels, groups, kept, seed, args.balanced)
    input_size = (channels, side, side)
    timings = {"eager": compare([dense, grouped, per_group], input_size, settings)}
    if onnx:
        from secateurs.measurement.onnx_runtime import compare_onnx

        timings["onnx"] = compare_onnx([dense, grouped, per_group], input_size, settings)
    actual = float(grouped.keep().float().mean())
    rows = []
    for batch in settings.batch_sizes:
        row = {
            "shape": f"{channels}x{side}x{side}",
            "G": groups,
            "kept": actual,
            "padding": grouped.padding_overhead(),
            "batch": batch,
        }
        for runtime, results in timings.items():
            for form, summary in zip(FORMS, results[batch][1:], strict=True):
                row[f"{runtime} {form}"] = summary["ratio"]
            row[f"{runtime} dense ms"] = results[batch][0]["median"]
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--groups", type=int, nargs="+", default=list(GROUPS))
    parser.add_argument("--kept", type=float, nargs="+", default=list(KEPT))
    parser.add_argument("--no-onnx", action="store_true", help="time PyTorch eager only")
    parser.add_argument(
        "--balanced",
        action="store_true",
        help="equal groups reading equal-sized input sets (balanced clustering: no padding)",
    )
    args = parser.parse_args()
    settings = LatencySettings(
        batch_sizes=args.batches, threads=args.threads, warmup=args.warmup, repeats=args.repeats
    )
    rows = []
    for channels, side in SHAPES:
        for groups in args.groups:
            for kept in args.kept:
                rows += time_forms((channels, side), groups, kept, settings, args)
    print(
        f"speed-up = dense median / form median ({args.threads} threads, {args.repeats} "
        "repeats, interleaved); kept = share of connections; padding = grouped work / "
        "per-group work\n"
    )
    print(markdown(rows))


if __name__ == "__main__":
    main()
