"""One timing stack: every latency (reports, keep-if-faster compaction decisions, latency
tables) is timed by a registered backend through the one loop of secateurs.measurement.timing. A
scripted clock and a scripted backend (no real timing): the clock moves only when a model runs,
by a duration the test knows."""

from __future__ import annotations

import copy
from itertools import takewhile
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from secateurs.latency import LatencySource, LatencySpec
from secateurs.measurement import LatencySettings, timing
from secateurs.measurement.backends import Backend, Timing, base, interleaved
from secateurs.pruning import ChannelGraph, PruningPlan, remove_channels


class Clock:
    """``time.perf_counter`` for the loop; logs every reading and every run, in order."""

    def __init__(self) -> None:
        self.now, self.log = 100.0, []

    def perf_counter(self) -> float:
        self.log.append("clock")
        return self.now

    def runner(self, label: str, ms: float):
        def run() -> None:
            self.log.append(label)
            self.now += ms / 1000

        return run


def timed_and_untimed(log: list[str]) -> tuple[list[str], list[int]]:
    """The runs made between two clock readings (the timed ones), in order, and for each how
    many runs of the same model came right before its first reading (untimed)."""
    timed, warm_before, opened, untimed = [], [], False, []
    for entry in log:
        if entry == "clock":
            opened = not opened
        elif opened:
            timed.append(entry)
            warm_before.append(len(list(takewhile(lambda e, x=entry: e == x, reversed(untimed)))))
            untimed = []
        else:
            untimed.append(entry)
    return timed, warm_before


@pytest.fixture
def clock(monkeypatch) -> Clock:
    found = Clock()
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=found.perf_counter))
    return found


def test_every_timed_run_follows_one_untimed_run_of_the_same_model(clock) -> None:
    runners = [clock.runner(name, 1.0) for name in "abc"]
    interleaved(runners, warmup=2, repeats=3)
    # two warm-up rounds, then per round each model: untimed, timed (between clock readings)
    warm_up = list("abc") * 2
    round_ = [e for name in "abc" for e in (name, "clock", name, "clock")]
    assert clock.log == warm_up + round_ * 3
    timed, warm_before = timed_and_untimed(clock.log)
    assert timed == list("abc") * 3  # interleaved: A B C A B C A B C
    assert warm_before == [timing.WARM_RUNS_PER_ROUND] * 9 == [1] * 9


def test_the_loop_returns_every_timed_duration_and_the_summaries_their_median(
    monkeypatch,
) -> None:
    durations = {"a": [4.0, 1.0, 9.0, 2.0, 8.0], "b": [1.0, 0.25, 7.0, 1.5, 3.0]}
    now = [0.0]
    left = {name: [d for ms in found for d in (500.0, ms)] for name, found in durations.items()}

    def runner(name: str):
        def run() -> None:
            now[0] += left[name].pop(0) / 1000

        return run

    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    times = interleaved([runner("a"), runner("b")], warmup=0, repeats=5)
    assert times == [pytest.approx(durations["a"]), pytest.approx(durations["b"])]
    rows = timing.with_ratios(times)
    assert (rows[0]["median"], rows[1]["median"]) == pytest.approx((4.0, 1.5))
    assert rows[1]["ratio"] == pytest.approx(4.0 / 1.5)  # the ratio of medians, not of means


def _ms(module: nn.Module) -> float:
    """A scripted duration: 1 us per parameter or buffer element, plus 0.05 ms per call."""
    return 0.05 + 1e-3 * sum(t.numel() for t in [*module.parameters(), *module.buffers()])


class FakeBackend(Backend):
    """Runs nothing: each run moves the clock by :func:`_ms` of its module."""

    name = "fake"
    clock: Clock | None = None

    def versions(self) -> dict[str, str]:
        return {"fake": "1"}

    def runner(self, module: nn.Module, input_shape, threads: int):
        return self.clock.runner(f"{type(module).__name__}:{_ms(module):.3f}", _ms(module))


@pytest.fixture
def fake(clock, monkeypatch) -> Clock:
    """The fake backend registered as "fake" (only)."""
    monkeypatch.setattr(FakeBackend, "clock", clock)
    monkeypatch.setitem(base._BACKENDS, "fake", FakeBackend)
    return clock


@pytest.fixture
def fake_everywhere(fake, monkeypatch) -> Clock:
    """The fake backend also in place of "eager" and "onnxruntime" (the compaction decisions
    time in those two by name)."""
    for name in ("eager", "onnxruntime"):
        monkeypatch.setitem(base._BACKENDS, name, FakeBackend)
    return fake


def _assert_warm_rule(log: list[str]) -> int:
    timed, warm_before = timed_and_untimed(log)
    assert timed and warm_before == [1] * len(timed)
    return len(timed)


def _pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)


def test_reports_time_through_the_registry_and_the_one_loop(fake) -> None:
    from secateurs.runs.measuring import latency, medians

    before, after = _pair()
    settings = LatencySettings(batch_sizes=(1, 4), threads=1, warmup=1, repeats=3)
    figures = latency((before, after), (3, 4, 4), settings, ["fake"], macs_reduction=2.0)
    for batch in ("1", "4"):
        row = figures["fake"][batch]
        assert (row.before_ms, row.after_ms) == pytest.approx((_ms(before), _ms(after)), abs=1e-4)
    assert _assert_warm_rule(fake.log) == 2 * 2 * 3  # 2 models x 2 batch sizes x 3 rounds
    found = medians(after, (3, 4, 4), settings, ["fake"])
    assert found["fake"]["1"] == pytest.approx(_ms(after))


def test_compaction_decisions_time_through_the_one_loop(fake_everywhere) -> None:
    fake = fake_everywhere
    from secateurs.pruning.compaction.fastest_form import timed_speedups
    from secateurs.pruning.spp.compact import compact_conv

    dense, narrow = _pair()
    settings = LatencySettings(batch_sizes=(1,), threads=1, warmup=1, repeats=3)
    speedups, (mean,) = timed_speedups([dense, narrow], (3, 4, 4), settings)
    expected = _ms(dense) / _ms(narrow)
    assert speedups["eager"]["1"] == speedups["onnxruntime"]["1"] == [pytest.approx(expected)]
    assert mean == pytest.approx(expected)
    _assert_warm_rule(fake.log)
    fake.log.clear()
    conv = nn.Conv2d(4, 8, 3, padding=1)
    keep = torch.ones(4, 3, 3, dtype=torch.bool)
    keep[:2] = False  # half the columns pruned: the compact form has fewer weights
    _, record = compact_conv(conv, keep, (4, 4, 4), settings, "conv")
    assert record.choice == "compact" and record.speedups[1] > 1
    _assert_warm_rule(fake.log)


def test_latency_tables_time_through_the_one_loop(fake, tmp_path) -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    ).eval()  # fmt: skip
    graph = ChannelGraph(model, (3, 4, 4))
    source = LatencySource(LatencySpec(backend="fake", repeats=2, model_repeats=3, cache=tmp_path))
    assert isinstance(source.backend, FakeBackend)
    plan = PruningPlan({graph.prunable_groups[0].root: [0, 1, 2, 3]})
    pruned = copy.deepcopy(model)
    remove_channels(ChannelGraph(pruned, (3, 4, 4)), plan)
    assert source.measured_ratio(graph, plan) == pytest.approx(_ms(pruned) / _ms(model))
    assert _assert_warm_rule(fake.log) == 2 * 3
    fake.log.clear()
    source.model_for(graph)  # the table's entries and the calibration's models
    assert _assert_warm_rule(fake.log) > 10


def test_a_backend_times_a_table_entry_with_the_same_loop_and_warm_rule(fake) -> None:
    backend = FakeBackend()
    conv = nn.Conv2d(3, 4, 1)
    # no warm-up round (it would run right before the first round's untimed run: 2 in a row)
    assert backend.time([(conv, (1, 3, 2, 2))], Timing(1, 0, 2)) == [pytest.approx(_ms(conv))]
    assert _assert_warm_rule(fake.log) == 2


def test_the_measure_layer_imports_nothing_above_it() -> None:
    import ast
    from pathlib import Path

    above = ("secateurs.latency", "secateurs.pruning", "secateurs.runs", "secateurs.cli")
    for path in Path(timing.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            assert not [n for n in names if n.startswith(above)], (path, names)
