"""Measurement: MACs and parameters, accuracy, latency comparisons and their summaries."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hand_counts import RESNET20_CONV_MACS, RESNET20_MACS, RESNET20_PARAMS
from secateurs.cli.main import main
from secateurs.measurement import (
    LatencySettings,
    compare,
    count_cost,
    evaluate,
    measure_latency,
    timing,
)
from secateurs.measurement.timing import summarise
from secateurs.models import create_model
from secateurs.store import Manifest, save_model


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
    # derived layer by layer in hand_counts: 40.8M in the convolutions (the paper's ~41M), plus
    # BN/ReLU/pooling element counts and the classifier
    cost = count_cost(create_model("resnet20", num_classes=10), (3, 32, 32))
    assert cost == {"macs": RESNET20_MACS, "params": RESNET20_PARAMS}
    assert RESNET20_CONV_MACS / cost["macs"] > 0.98  # the convolutions are nearly all of it


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


# -- the latency figures users read, from a timer whose readings are known --------------------
class FakeClock:
    """Stands in for ``time.perf_counter`` in secateurs.measurement.timing (the one timing loop):
    time moves only when a :class:`Scripted` model runs."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.calls: list[str] = []  # which model ran, in order

    def perf_counter(self) -> float:
        return self.now


def warmed(timed: list[float], warmup: int = 1, untimed: float = 500.0) -> list[float]:
    """Durations of every run of a model at one batch size: ``warmup`` warm-up rounds, then
    each timed duration after the untimed run that precedes it in its round (all 500 ms)."""
    return [untimed] * warmup + [d for ms in timed for d in (untimed, ms)]


class Scripted(nn.Module):
    """A model that takes, at each batch size, the next of its scripted durations (ms); the
    timed durations are given, the untimed runs around them take 500 ms (:func:`warmed`)."""

    def __init__(self, name: str, clock: FakeClock, durations: dict[int, list[float]]) -> None:
        super().__init__()
        self.name, self.clock = name, clock
        self.durations = {batch: warmed(values) for batch, values in durations.items()}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.clock.now += self.durations[images.shape[0]].pop(0) / 1000
        self.clock.calls.append(self.name)
        return images


def test_compare_speedup_is_the_ratio_of_medians_of_interleaved_runs(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    # the warm-up and the untimed run before each timed one take 500 ms, never counted
    before = Scripted("before", clock, {1: [4, 1, 9, 2, 8], 4: [10, 12, 11, 30, 13]})
    after = Scripted("after", clock, {1: [1, 0.25, 7, 1.5, 3], 4: [6, 3, 4, 5, 40]})
    settings = LatencySettings(batch_sizes=(1, 4), threads=1, warmup=1, repeats=5)
    results = compare([before, after], (3, 2, 2), settings)
    # batch 1: medians of [4, 1, 9, 2, 8] and [1, 0.25, 7, 1.5, 3] are 4 and 1.5: 2.67x faster
    # (not the ratio of means 4.8 / 2.55, nor of minima 1 / 0.25)
    # batch 4: medians of [10, 12, 11, 30, 13] and [6, 3, 4, 5, 40] are 12 and 5: 2.4x faster
    for batch, median_before, median_after in ((1, 4.0, 1.5), (4, 12.0, 5.0)):
        rows = results[batch]
        assert rows[0]["median"] == pytest.approx(median_before, abs=1e-6)
        assert rows[1]["median"] == pytest.approx(median_after, abs=1e-6)
        assert rows[0]["ratio"] == 1.0
        assert rows[1]["ratio"] == pytest.approx(median_before / median_after, rel=1e-6)
        assert rows[0]["repeats"] == rows[1]["repeats"] == 5
    assert results[1][1]["min"] == pytest.approx(0.25, abs=1e-6)  # the warm-up is not timed
    assert results[4][1]["max"] == pytest.approx(40.0, abs=1e-6)
    # interleaved: warm-up, then before (untimed, timed), after (untimed, timed)... per batch
    per_batch = ["before", "after"] + ["before", "before", "after", "after"] * 5
    assert clock.calls == per_batch * 2


def test_measure_command_prints_the_median_and_iqr_of_its_timings(
    tmp_path, monkeypatch, capsys
) -> None:
    classes = [str(i) for i in range(10)]
    manifest = Manifest("resnet20", {}, classes, [3, 32, 32], [0.5] * 3, [0.25] * 3)
    save_model(create_model("resnet20", num_classes=10), tmp_path / "model", manifest)
    durations = {1: [3, 1, 4, 1, 5], 4: [20, 10, 40, 30, 50]}  # ms, 5 timed runs each
    readings = []
    for batch in (1, 4):
        for duration in durations[batch]:
            start = 10.0 * len(readings)  # when a run starts does not matter, only its duration
            readings += [start, start + duration / 1000]
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=iter(readings).__next__))
    argv = ["measure", str(tmp_path / "model"), "--batch-sizes", "1", "4", "--repeats", "5"]
    assert main([*argv, "--threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["macs"], result["params"]) == (RESNET20_MACS, RESNET20_PARAMS)
    # medians 3 and 30 ms; quartiles ("exclusive": at ranks 1.5 and 4.5 of 5) 1 and 4.5, and 15
    # and 45: IQRs 3.5 and 30
    assert result["latency_ms"] == pytest.approx({"1": 3.0, "4": 30.0}, abs=1e-3)
    assert result["latency_iqr_ms"] == pytest.approx({"1": 3.5, "4": 30.0}, abs=1e-3)
    assert result["threads"] == 1


def test_run_latency_is_the_median_speedup_and_its_share_of_the_macs_reduction(
    monkeypatch,
) -> None:
    """What prune and spp reports (and ``secateurs.measure(baseline=...)``) show per batch."""
    from secateurs.runs.measuring import latency as run_latency

    clock = FakeClock()
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    before = Scripted("before", clock, {1: [4, 1, 9, 2, 8], 4: [10, 12, 11, 30, 13]})
    after = Scripted("after", clock, {1: [1, 0.25, 7, 1.5, 3], 4: [6, 3, 4, 5, 40]})
    settings = LatencySettings(batch_sizes=(1, 4), threads=1, warmup=1, repeats=5)
    figures = run_latency((before, after), (3, 2, 2), settings, ["eager"], macs_reduction=3.0)
    assert list(figures) == ["eager"] and list(figures["eager"]) == ["1", "4"]
    # medians 4 and 1.5 ms: 2.6667x faster for 3x fewer MACs, realised 0.8889; at batch 4,
    # 12 and 5 ms: 2.4x, realised 0.8
    one, four = figures["eager"]["1"], figures["eager"]["4"]
    assert (one.before_ms, one.after_ms) == pytest.approx((4.0, 1.5), abs=1e-4)
    assert (one.speedup, one.realisation) == pytest.approx((2.6667, 0.8889), abs=1e-4)
    assert (four.before_ms, four.after_ms) == pytest.approx((12.0, 5.0), abs=1e-4)
    assert (four.speedup, four.realisation) == pytest.approx((2.4, 0.8), abs=1e-4)
    rounds = ["before", "before", "after", "after"] * 5  # each timed run after an untimed one
    assert clock.calls == ["before", "after", *rounds] * 2  # interleaved, warm-up included
