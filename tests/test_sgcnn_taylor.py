"""SG-CNN's Taylor importance: |W dL/dW| summed over the kernel and the batches, in eval mode;
a connection reading a channel that carries nothing is worth nothing (magnitude would keep it);
the run takes it from the command line."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from digits_model import train_digits
from secateurs.pruning.sgcnn.grouping import regroup
from secateurs.pruning.sgcnn.taylor import taylor_vectors


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(3):
        images = torch.randn(5, 4, 8, 8, generator=generator)
        images[:, 2] = 0  # input channel 2 carries nothing
        batches.append((images, torch.randint(0, 3, (5,), generator=generator)))
    return batches


def test_taylor_vectors_sum_weight_times_gradient_over_kernel_and_batches() -> None:
    net = _net()
    conv = net[0]
    vectors = taylor_vectors(net, {"0": conv}, _batches(), count=2)["0"]
    assert net.training  # put back as it was
    # reference through backward() and .grad, batch by batch, in eval mode
    net.eval()
    expected = torch.zeros(6, 4, dtype=torch.float64)
    for images, labels in _batches()[:2]:
        net.zero_grad()
        F.cross_entropy(net(images), labels).backward()
        expected += (conv.weight * conv.weight.grad).abs().sum((2, 3)).double()
    assert torch.allclose(vectors, expected.detach(), rtol=1e-6)
    assert bool((vectors[:, 2] == 0).all()) and bool((vectors[:, [0, 1, 3]] > 0).all())


def test_groups_built_on_taylor_drop_the_silent_channel_first() -> None:
    net = _net()
    conv = net[0]
    with torch.no_grad():
        conv.weight[:, 2] *= 50  # by magnitude, channel 2 is the most important
    vectors = taylor_vectors(net, {"0": conv}, _batches())["0"]
    by_taylor = regroup(conv.weight, 2, 0.25, 0, None, vectors=vectors)
    by_weight = regroup(conv.weight, 2, 0.25, 0, None)
    assert not bool(by_taylor.keep[:, 2].any())  # every group stops reading channel 2
    assert bool(by_weight.keep[:, 2].all())


def test_taylor_vectors_of_a_linear_layer_are_one_product_a_connection() -> None:
    """``--linear --importance taylor`` groups a fully connected layer: its V[i, c] is
    |W[i, c] dL/dW[i, c]| summed over the batches (no kernel to sum over; this crashed)."""
    net = _net()
    linear = net[6]
    vectors = taylor_vectors(net, {"6": linear}, _batches(), count=3)["6"]
    net.eval()
    expected = torch.zeros(3, 6, dtype=torch.float64)
    for images, labels in _batches():
        net.zero_grad()
        F.cross_entropy(net(images), labels).backward()
        expected += (linear.weight * linear.weight.grad).abs().double()
    assert vectors.shape == (3, 6)
    assert torch.allclose(vectors, expected.detach(), rtol=1e-6)


def test_sgcnn_runs_with_taylor_importance(tmp_path: Path) -> None:
    from secateurs.cli.main import main
    from secateurs.report import read_report

    base = train_digits(tmp_path / "base")
    out = tmp_path / "run"
    argv = ["sgcnn", str(base), "--data", "digits", "-o", str(out)]
    argv += ["--threads", "1", "--batch-size", "64", "--latency-repeats", "0", "--groups", "4"]
    assert main([*argv, "--epochs", "2", "--scheme", "G", "--importance", "taylor"]) == 0
    report = read_report(out)
    assert report.pruning.method_params["importance"] == "taylor"
    assert report.pruning.details["compacted_vs_masked_max_rel_diff"] <= 1e-4
