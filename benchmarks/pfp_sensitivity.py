"""Benchmark: the time PFP takes to compute the sensitivities of every prunable channel of a model
from |S| images (the issue's target: ResNet-56, |S| = 200, under 60 s on this machine).

Random weights with randomised BatchNorm and random images: the time depends on the shapes only.

    OMP_NUM_THREADS=1 python benchmarks/pfp_sensitivity.py --model resnet56 --images 200 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from secateurs.models import create_model
from secateurs.pruning import ChannelGraph
from secateurs.pruning.methods import ScoringData, create_method

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pruning_helpers import randomise_batchnorm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet56")
    parser.add_argument("--images", type=int, default=200, help="|S|")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = randomise_batchnorm(create_model(args.model, num_classes=10))
    input_size = (3, 32, 32)
    graph = ChannelGraph(model, input_size)
    count, batches = args.images, []
    while count > 0:
        size = min(count, args.batch_size)
        batches.append((torch.randn(size, *input_size), torch.zeros(size, dtype=torch.long)))
        count -= size
    method = create_method("pfp", sample_size=args.images)
    started = time.perf_counter()
    scores = method.score(graph, ScoringData(batches))
    seconds = time.perf_counter() - started
    channels = sum(len(score) for score in scores.values())
    print(
        f"{args.model}: sensitivities of {channels} channels in {len(scores)} groups from "
        f"{args.images} images, {args.threads} thread(s): {seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
