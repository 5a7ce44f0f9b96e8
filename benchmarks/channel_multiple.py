"""Benchmark: does this CPU prefer channel counts that are multiples of 4, 8 or 16?

Times a 3x3 convolution (stride 1, padding 1) at CIFAR resolutions for every channel count in a
range, interleaved (all widths in one round, many rounds; the one timing loop,
:mod:`secateurs.measurement.timing`, in the eager backend), and prints the time per channel so that
the cost of "odd" widths shows. The answer sets ``--round-to``'s default.

    python benchmarks/channel_multiple.py --threads 2 --batch 64
"""

from __future__ import annotations

import argparse

from torch import nn

from secateurs.measurement.backends import Timing, create_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=16, help="feature map height and width")
    parser.add_argument("--low", type=int, default=24)
    parser.add_argument("--high", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    widths = list(range(args.low, args.high + 1))
    items = [
        (nn.Conv2d(w, w, 3, padding=1, bias=False), (args.batch, w, args.size, args.size))
        for w in widths
    ]
    medians = create_backend("eager").time(items, Timing(args.threads, 3, args.rounds))
    print(f"3x3 conv, batch {args.batch}, {args.size}x{args.size}, {args.threads} threads")
    print("| channels | median ms | ms per (channel^2) x 1000 |")
    print("|---:|---:|---:|")
    for w, median in zip(widths, medians, strict=True):
        print(f"| {w} | {median:.3f} | {median / (w * w) * 1000:.3f} |")


if __name__ == "__main__":
    main()
