"""Measurement: MACs and parameters, accuracy, latency comparisons and their summaries."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from secateurs.measure import LatencySettings, compare, count_cost, evaluate, measure_latency
from secateurs.measure.latency import summarise
from secateurs.models import create_model


def test_count_cost_of_a_small_net() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    ).train()
    cost = count_cost(net, (3, 8, 8))
    # Torch-Pruning counts one MAC per output element for each multiply-add, and also counts the
    # cheap element-wise layers:
    conv = 8 * 3 * 9 * 64  # 8 output channels x (3 in x 3x3) x 8x8 positions = 13,824
    batch_norm = 2 * 8 * 8 * 8  # a scale and a shift per output element = 1,024
    relu = 8 * 8 * 8  # one per element = 512
    max_pool = 8 * 8 * 8  # one per *input* element = 512
    avg_pool = 8 * 4 * 4  # one per input element = 128
    linear = 8 * 10 + 10  # weights, plus one per output for the bias = 90
    assert cost["macs"] == conv + batch_norm + relu + max_pool + avg_pool + linear == 16_090
    # parameters: conv weights, BN weight and bias (not its running statistics), linear
    assert cost["params"] == 8 * 3 * 9 + 2 * 8 + (8 * 10 + 10) == 322
    assert net.training  # the mode is restored


def test_count_cost_of_a_biased_conv() -> None:
    # a bias adds one per output element: 8 x 8x8
    cost = count_cost(nn.Conv2d(3, 8, 3, padding=1), (3, 8, 8))
    assert cost == {"macs": 8 * 3 * 9 * 64 + 8 * 64, "params": 8 * 3 * 9 + 8}


def test_count_cost_of_resnet20() -> None:
    # 41.4M: the paper's ~41M multiply-adds for ResNet-20, plus BN/ReLU/pooling element counts
    cost = count_cost(create_model("resnet20", num_classes=10), (3, 32, 32))
    assert cost == {"macs": 41_407_114, "params": 272_474}


class FixedLogits(nn.Module):
    """Returns row ``i`` of a fixed table for an input whose first value is ``i``."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.logits[x[:, 0].long()]


def test_evaluate_known_logits() -> None:
    classes = 8
    ranks = [0, 0, 0, 1, 2, 4, 4, 5, 6, 7]  # where each image's true class ranks in its logits
    logits = torch.zeros(len(ranks), classes)
    labels = torch.zeros(len(ranks), dtype=torch.int64)
    for i, rank in enumerate(ranks):
        order = torch.roll(torch.arange(classes), i)  # order[0] scores highest
        logits[i, order] = torch.linspace(3.0, -3.0, classes)
        labels[i] = order[rank]
    model = FixedLogits(logits).train()
    index = torch.arange(len(ranks), dtype=torch.float32)[:, None]
    batches = [(index[:4], labels[:4]), (index[4:8], labels[4:8]), (index[8:], labels[8:])]
    result = evaluate(model, batches)
    assert result["top1"] == 30.0  # ranks 0, 0, 0
    assert result["top5"] == 70.0  # ranks below 5
    assert result["n"] == 10
    assert math.isclose(result["loss"], F.cross_entropy(logits, labels).item(), rel_tol=1e-6)
    assert model.modes == [False, False, False]  # evaluated in eval mode
    assert model.training  # and put back in training mode


def test_evaluate_with_fewer_than_five_classes_and_no_batches() -> None:
    model = FixedLogits(torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0]]))
    result = evaluate(model, [(torch.tensor([[0.0], [1.0]]), torch.tensor([0, 2]))])
    assert (result["top1"], result["top5"], result["n"]) == (50.0, 100.0, 2)
    empty = evaluate(model, [])
    assert empty["n"] == 0 and empty["top1"] == 0.0 and math.isnan(empty["loss"])


def test_compare_puts_a_cheap_model_faster() -> None:
    torch.manual_seed(0)
    heavy = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1))
    cheap = nn.Conv2d(3, 4, 1)
    settings = LatencySettings(batch_sizes=(1, 2), threads=1, warmup=2, repeats=5)
    results = compare([heavy, cheap], (3, 32, 32), settings)
    assert sorted(results) == [1, 2]
    for rows in results.values():
        assert len(rows) == 2
        assert rows[0]["ratio"] == 1.0
        assert rows[1]["ratio"] > 1.5
        assert rows[0]["repeats"] == rows[1]["repeats"] == 5
        assert rows[0]["min"] <= rows[0]["median"] <= rows[0]["max"]
    assert torch.get_num_threads() == 1
    single = measure_latency(cheap, (3, 32, 32), LatencySettings((1,), 1, warmup=1, repeats=3))
    assert list(single) == [1] and single[1]["repeats"] == 3 and single[1]["ratio"] == 1.0


def test_summarise_known_values() -> None:
    assert summarise([5.0, 1.0, 4.0, 2.0, 3.0]) == {
        "median": 3.0,
        "iqr": 3.0,  # quartiles 1.5 and 4.5 (the "exclusive" method)
        "min": 1.0,
        "max": 5.0,
        "repeats": 5,
    }
    assert summarise([2.5]) == {"median": 2.5, "iqr": 0.0, "min": 2.5, "max": 2.5, "repeats": 1}
    assert summarise([1.0, 2.0, 3.0, 4.0])["median"] == pytest.approx(2.5)
