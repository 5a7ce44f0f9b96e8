"""Latency targets where the per-layer table cannot price the steps (batch 1 in onnxruntime: a
layer timed alone is mostly its call and layout conversion) while the whole model still gets
faster when narrowed: the allocation reaches the thinnest model the floor allows, refuses a
target only after timing that model, and records its latency."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from latency_helpers import CALL_MS, ScriptedBackend, scripted_ms
from secateurs.errors import SecateursError
from secateurs.latency import LatencySource, LatencySpec
from secateurs.measurement.backends import register_backend
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, PruningPlan, Target, remove_channels
from secateurs.pruning.floor import Floor, group_floors
from secateurs.pruning.methods import create_method

INPUT = (3, 32, 32)
FLAT_MS = 2.0  # a layer timed alone never runs under this (ResNet-20's 3x3 convolutions: 2.36)


@register_backend  # the API and the job find it by name
class OverheadBoundBackend(ScriptedBackend):
    """A model of more than one layer runs as :func:`scripted_ms` says; a layer timed alone (a
    table entry) costs at least ``FLAT_MS``, so the table prices narrowing it only in its top
    ~15% of compute and not at all below."""

    name = "scripted-overhead-bound"

    def time(self, items, timing):
        found = super().time(items, timing)
        layers = [sum(isinstance(m, nn.Conv2d | nn.Linear) for m in module.modules())
                  for module, _ in items]  # fmt: skip
        return [
            ms if count > 1 else CALL_MS + max(ms - CALL_MS, FLAT_MS)
            for ms, count in zip(found, layers, strict=True)
        ]


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def _allocation(tmp_path, min_channels: int = 1) -> Allocation:
    spec = LatencySpec(backend="scripted", grid=16, cache=tmp_path)
    source = LatencySource(spec, OverheadBoundBackend())
    return Allocation(latency=source, min_channels=min_channels)


def _measured(model: nn.Module, plan) -> float:
    pruned = copy.deepcopy(model)
    remove_channels(ChannelGraph(pruned, INPUT), plan)
    return scripted_ms(pruned, (1, *INPUT), 1) / scripted_ms(model, (1, *INPUT), 1)


def _floor_ratio(model: nn.Module, min_channels: int) -> float:
    """The whole-model ratio of every prunable group at its default floor (1/8 of its width,
    1/4 at the stem and the classifier's input, at least ``min_channels``)."""
    graph = ChannelGraph(model, INPUT)
    floors = group_floors(graph, Floor(min_channels=min_channels))
    plan = PruningPlan({root: list(range(graph.group(root).size - kept))
                        for root, kept in floors.items()})  # fmt: skip
    return _measured(model, plan)


def test_a_target_the_table_cannot_price_is_met_by_measurement(tmp_path) -> None:
    model = create_model("resnet20").eval()
    graph = ChannelGraph(model, INPUT)
    allocation = _allocation(tmp_path)
    result = create_method("l1").plan(graph, None, Target("latency", 0.6), allocation)
    measured = _measured(model, result.plan)
    assert measured == pytest.approx(result.achieved, rel=1e-9)
    assert abs(measured / 0.6 - 1) <= 0.03
    floor = allocation.latency.floor
    assert floor is not None and floor["ratio"] == pytest.approx(_floor_ratio(model, 1))


def test_a_target_below_the_measured_floor_is_refused_with_that_floor(tmp_path) -> None:
    model = create_model("resnet20").eval()
    graph = ChannelGraph(model, INPUT)
    floor = _floor_ratio(model, 8)
    assert 0.1 < floor < 0.3  # 8 channels per group kept: an eighth to a half of each layer
    with pytest.raises(SecateursError) as refused:
        create_method("l1").plan(graph, None, Target("latency", 0.05), _allocation(tmp_path, 8))
    message = str(refused.value)
    assert "latency ratio of 0.05 cannot be met" in message
    assert f"the thinnest model the floor allows measures {floor:.3f}" in message
    assert "at batch 1" in message and "ask for" in message


def test_the_floor_latency_is_recorded_beside_the_achieved_ratio(tmp_path) -> None:
    from secateurs.api import _custom_manifest
    from secateurs.runs.prune_job import PruneJob
    from secateurs.runs.prune_run import _record, prune_copy

    model = create_model("resnet20").eval()
    options = {"target_latency": 0.6, "backend": OverheadBoundBackend.name}
    job = PruneJob(
        model=tmp_path, out=tmp_path / "o", method="l1", latency_cache=tmp_path, **options
    )
    manifest = _custom_manifest(model, None, torch.zeros(1, *INPUT))
    pruned = prune_copy(job, model, manifest, None, torch.device("cpu"))
    floor = pruned.manifest.metrics["latency_floor"]  # the pruning step's measurements
    achieved = scripted_ms(pruned.model, (1, *INPUT), 1) / scripted_ms(model, (1, *INPUT), 1)
    assert floor["ratio"] == pytest.approx(_floor_ratio(model, 1))
    assert floor["ratio"] < achieved and abs(achieved / 0.6 - 1) <= 0.03
    assert floor["ms"] == pytest.approx(floor["ratio"] * floor["dense_ms"])
    assert (floor["min_channels"], floor["round_to"]) == (1, 1)
    # the report's pruning record carries it in its details, beside the latency model's settings
    details = _record(job, model, pruned).details
    assert details["latency_floor"] == floor and details["latency_model"]["batch"] == 1


def test_report_md_shows_the_floor_beside_the_achieved_ratio() -> None:
    from secateurs.report import Cost, PruningRecord, Report, RunSettings, markdown

    floor = {"ratio": 0.62, "ms": 0.62, "dense_ms": 1.0, "min_channels": 1, "round_to": 1}
    record = PruningRecord("l1", "latency", 0.7, 0.71, details={"latency_floor": floor})
    report = Report(
        settings=RunSettings("prune", "resnet20", "m"),
        pruning=record,
        cost_before=Cost(40_000_000, 270_000),
        cost_after=Cost(20_000_000, 140_000),
    )
    text = markdown(report)
    assert "achieved latency ratio 0.7100 (the thinnest model the floor allows measures 0.620)" in (
        text
    )
    record.details = {}
    assert "floor allows" not in markdown(report)


def _flat_path(states: int) -> list:
    """States whose prediction says nothing (flat after the dense one) and whose MACs fall
    evenly from 1 to 0: the search has only measurement to go on."""
    from secateurs.latency.allocate import PathPoint

    return [PathPoint([], 1.0 if i == 0 else 0.95, 1 - i / (states - 1)) for i in range(states)]


def test_the_search_meets_a_target_the_prediction_cannot_see() -> None:
    from secateurs.latency.allocate import LATENCY_TOLERANCE, search

    path = _flat_path(301)
    tried: list[int] = []

    def measure(index: int) -> float:  # latency falls slowly at first, fast near the floor
        tried.append(index)
        return 0.02 + 0.98 * path[index].macs ** 4

    floor = measure(300)
    measured = search(path, measure, 0.2, 6, {0: 1.0, 300: floor})
    assert len(tried) <= 1 + 6
    # the line through the two ends keeps landing above 0.2: half-way steps get there
    assert any(abs(measured[i] / 0.2 - 1) <= LATENCY_TOLERANCE for i in tried[1:])


def test_a_search_on_noisy_measurements_stops_within_its_tries() -> None:
    from secateurs.latency.allocate import search

    path = _flat_path(51)
    noise = torch.Generator().manual_seed(3)
    tried: list[int] = []

    def measure(index: int) -> float:  # not monotone along the path
        tried.append(index)
        return path[index].macs * 0.8 + 0.2 + 0.1 * float(torch.rand(1, generator=noise))

    search(path, measure, 0.33, 6, {0: 1.0, 50: measure(50)})
    assert 1 < len(tried) <= 7 and len(set(tried)) == len(tried)  # never the same state twice
