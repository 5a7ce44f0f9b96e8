"""The latency model: cache keys and invalidation, prediction from a plan, efficient widths,
and the allocation meeting a latency target, all on a scripted backend (no clock)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from latency_helpers import CALL_MS, ScriptedBackend, scripted_ms
from pruning_helpers import two_convs
from secateurs.errors import SecateursError
from secateurs.latency import LatencySource, LatencySpec, create_backend
from secateurs.latency import cache as latency_cache
from secateurs.latency.calibration import fit
from secateurs.latency.predict import removal_masks
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, PruningPlan, Target, remove_channels
from secateurs.pruning.methods import create_method

INPUT = (3, 32, 32)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def _source(tmp_path, backend: ScriptedBackend, threads: int = 2, grid: int = 4) -> LatencySource:
    spec = LatencySpec(backend="scripted", threads=threads, grid=grid, cache=tmp_path)
    return LatencySource(spec, backend)


def test_a_cache_is_reused_and_rebuilt_for_another_cpu_version_or_thread_count(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(latency_cache, "cpu_model", lambda: "CPU A")
    model = two_convs(8)
    # two_convs: conv 3->8 (in fixed: 4 widths), conv 8->8 (4 x 4), linear 8->10 (4): 24 entries,
    # plus the dense model and 16 calibration plans timed whole
    first = ScriptedBackend()
    _source(tmp_path, first).model_for(ChannelGraph(model, INPUT))
    assert first.timed == 4 + 16 + 4 + 17
    again = ScriptedBackend()
    _source(tmp_path, again).model_for(ChannelGraph(model, INPUT))
    assert again.timed == 0
    for change in ("cpu", "version", "threads"):
        backend = ScriptedBackend(version="2" if change == "version" else "1")
        monkeypatch.setattr(
            latency_cache, "cpu_model", lambda c=change: "CPU B" if c == "cpu" else "CPU A"
        )
        threads = 1 if change == "threads" else 2
        _source(tmp_path, backend, threads).model_for(ChannelGraph(model, INPUT))
        assert backend.timed == 41, change


def test_a_cache_file_whose_key_differs_is_not_trusted(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(latency_cache, "cpu_model", lambda: "CPU A")
    model = two_convs(8)
    _source(tmp_path, ScriptedBackend()).model_for(ChannelGraph(model, INPUT))
    (path,) = tmp_path.glob("*.json")
    path.write_text(path.read_text().replace("CPU A", "CPU Z"))  # same name, another machine's
    backend = ScriptedBackend()
    _source(tmp_path, backend).model_for(ChannelGraph(model, INPUT))
    assert backend.timed == 41


def test_prediction_of_a_plan_equals_the_scripted_latency_of_the_pruned_model(tmp_path) -> None:
    model = create_model("resnet20").eval()
    graph = ChannelGraph(model, INPUT)
    latency = _source(tmp_path, ScriptedBackend(), grid=8).model_for(graph)
    dense = scripted_ms(model, (1, *INPUT), 1)
    assert latency.dense_ms == pytest.approx(dense)
    # remove 4 channels of layer1's residual group and 8 of layer3.0's first convolution: widths
    # on the table's grid (16 -> 12 in steps of 2; 64 -> 56 in steps of 8)
    plan = PruningPlan({"conv1": [0, 1, 2, 3], "layer3.0.conv1": list(range(8))})
    pruned = copy.deepcopy(model)
    remove_channels(ChannelGraph(pruned, INPUT), plan)
    expected = scripted_ms(pruned, (1, *INPUT), 1)
    assert expected < dense - 0.1  # the plan changes the latency
    assert latency.predict_plan(graph, plan) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("ratio", [0.45])
def test_the_allocator_meets_a_scripted_latency_target(tmp_path, ratio: float) -> None:
    model = create_model("resnet20").eval()
    source = _source(tmp_path, ScriptedBackend(quantum=1), grid=16)
    allocation = Allocation(latency=source)
    graph = ChannelGraph(model, INPUT)
    result = create_method("l1").plan(graph, None, Target("latency", ratio), allocation)
    pruned = copy.deepcopy(model)
    remove_channels(ChannelGraph(pruned, INPUT), result.plan)
    measured = scripted_ms(pruned, (1, *INPUT), 1) / scripted_ms(model, (1, *INPUT), 1)
    assert measured == pytest.approx(result.achieved, rel=1e-9)
    assert abs(measured / ratio - 1) <= 0.03


def test_latency_allocation_keeps_only_efficient_widths(tmp_path) -> None:
    # channels padded to 16: a width that is not a multiple of 16 costs as much as the next one,
    # so it is never kept
    model = create_model("resnet20").eval()
    source = _source(tmp_path, ScriptedBackend(quantum=16), grid=8)
    graph = ChannelGraph(model, INPUT)
    result = create_method("l1").plan(
        graph, None, Target("latency", 0.6), Allocation(latency=source)
    )
    kept = result.plan.kept(graph)
    widths = {kept[g.root] for g in graph.prunable_groups}
    assert widths <= {16, 32, 48, 64}
    assert abs(result.achieved / 0.6 - 1) <= 0.03


def test_round_to_auto_picks_the_efficient_widths_of_the_table(tmp_path) -> None:
    model = create_model("resnet20").eval()
    source = _source(tmp_path, ScriptedBackend(quantum=16), grid=8)
    graph = ChannelGraph(model, INPUT)
    exact = create_method("l1").plan(graph, None, Target("macs", 0.5), Allocation())
    kept_exact = exact.plan.kept(graph)
    assert any(width % 16 for width in kept_exact.values())  # exact widths are not all multiples
    auto = Allocation(auto_widths=True, latency=source)
    result = create_method("l1").plan(graph, None, Target("macs", 0.5), auto)
    kept = result.plan.kept(graph)
    assert {kept[g.root] for g in graph.prunable_groups} <= {16, 32, 48, 64}
    assert result.plan.removed_count > 0


def test_efficient_widths_of_a_scripted_table(tmp_path) -> None:
    model = two_convs(32)
    graph = ChannelGraph(model, INPUT)
    latency = _source(tmp_path, ScriptedBackend(quantum=16), grid=8).model_for(graph)
    # both groups (conv 0's and conv 3's outputs) pay for 16 or 32 channels, whatever the width
    assert latency.efficient_widths(graph) == {"0": [16, 32], "3": [16, 32]}
    # three tabled layers (two convolutions, the linear one) each timed with a call's overhead
    assert latency.fixed_ms == pytest.approx(CALL_MS - 3 * CALL_MS)


def test_an_unknown_backend_is_one_line() -> None:
    with pytest.raises(SecateursError, match=r"unknown backend 'tpu'.*eager, onnxruntime"):
        create_backend("tpu")


def test_a_latency_target_that_cannot_be_met_says_so(tmp_path) -> None:
    model = two_convs(8)
    source = _source(tmp_path, ScriptedBackend(), grid=4)
    graph = ChannelGraph(model, INPUT)
    with pytest.raises(SecateursError, match=r"latency ratio of 0\.01 cannot be met"):
        create_method("l1").plan(graph, None, Target("latency", 0.01), Allocation(latency=source))


def test_the_python_api_prunes_to_a_latency_target(tmp_path) -> None:
    import secateurs

    model = two_convs(16).eval()
    images = torch.zeros(1, *INPUT)
    pruned = secateurs.prune(
        model, method="l1", example_input=images, target_latency=0.5, backend="scripted",
        latency_cache=tmp_path,
    )  # fmt: skip
    measured = scripted_ms(pruned.model, (1, *INPUT), 1) / scripted_ms(model, (1, *INPUT), 1)
    assert measured == pytest.approx(pruned.achieved, rel=1e-9)
    assert abs(measured / 0.5 - 1) <= 0.03
    assert pruned.record.oneshot.target == {"kind": "latency", "ratio": 0.5}


class InGraphBackend(ScriptedBackend):
    """Whole models (more than one layer) run their layers twice as fast as the layers timed
    alone, plus 0.2 ms the table never sees: what onnxruntime does to a layer inside its graph,
    in its simplest (affine) form."""

    name = "scripted-in-graph"

    def time(self, items, timing):
        found = super().time(items, timing)
        layers = [sum(isinstance(m, nn.Conv2d | nn.Linear) for m in module.modules())
                  for module, _ in items]  # fmt: skip
        return [
            0.5 * ms + 0.2 if count > 1 else ms for ms, count in zip(found, layers, strict=True)
        ]


def test_the_calibration_corrects_a_table_that_misjudges_layers_inside_the_model(tmp_path) -> None:
    model = create_model("resnet20").eval()
    graph = ChannelGraph(model, INPUT)
    backend = InGraphBackend()
    latency = _source(tmp_path, backend, grid=16).model_for(graph)
    # plans the calibration was not fitted on: random fractions drawn with another seed
    generator = torch.Generator().manual_seed(7)
    for _ in range(5):
        removals = {}
        for group in graph.prunable_groups:
            keep = max(
                1, round(group.size * (0.3 + 0.7 * float(torch.rand(1, generator=generator))))
            )
            removals[group.root] = list(range(group.size - keep))
        plan = PruningPlan(removals)
        pruned = copy.deepcopy(model)
        remove_channels(ChannelGraph(pruned, INPUT), plan)
        dense_ms, pruned_ms = backend.time([(model, (1, *INPUT)), (pruned, (1, *INPUT))], None)
        measured = pruned_ms / dense_ms
        removed = removal_masks(graph, plan)
        table_only = latency.table_ms(removed) / latency.dense_ms
        assert abs(table_only / measured - 1) > 0.1  # the table alone is far off
        assert latency.ratio(graph, plan) == pytest.approx(measured, rel=1e-6)


def test_the_calibration_fit_recovers_an_affine_law_through_the_dense_model() -> None:
    law = [(t, s, 1 + 0.8 * (t - 1) + 0.3 * s) for t, s in [(0.5, 1), (0.4, 0.2), (0.7, 0.6)]]
    found = fit([(1.0, 0.0, 1.0), *law])
    assert (found.a, found.b, found.c) == pytest.approx((0.2, 0.8, 0.3), abs=1e-9)
    # points no line through the dense model fits: the fit still passes through it
    bent = fit([(1.0, 0.0, 1.0), (0.5, 0.0, 0.8), (0.4, 0.0, 0.8), (0.2, 0.0, 0.5)])
    assert bent.ratio(1.0, 0.0) == pytest.approx(1.0, abs=1e-12)
    # a share that never varies gets no weight
    flat = fit([(t, 0.0, 1 + 0.9 * (t - 1)) for t in (1.0, 0.6, 0.3)])
    assert (flat.a, flat.b, flat.c) == pytest.approx((0.1, 0.9, 0.0), abs=1e-9)
    # a slope that noise made flat (or negative) keeps the table's own prediction
    noisy = fit([(1.0, 0.0, 1.0), (0.5, 0.0, 1.02), (0.3, 0.0, 0.99)])
    assert (noisy.a, noisy.b, noisy.c) == (0.0, 1.0, 0.0)


def test_a_latency_target_with_round_to_keeps_multiples_only(tmp_path) -> None:
    # every width is efficient on this backend (no padding): round_to alone makes them multiples
    model = create_model("resnet20").eval()
    source = _source(tmp_path, ScriptedBackend(quantum=1), grid=16)
    graph = ChannelGraph(model, INPUT)
    roots = [group.root for group in graph.prunable_groups]
    free = create_method("l1").plan(graph, None, Target("latency", 0.5), Allocation(latency=source))
    assert any(free.plan.kept(graph)[root] % 8 for root in roots)
    rounded = create_method("l1").plan(
        graph, None, Target("latency", 0.5), Allocation(latency=source, round_to=8)
    )
    assert {rounded.plan.kept(graph)[root] % 8 for root in roots} == {0}
    assert abs(rounded.achieved / 0.5 - 1) <= 0.03


def test_a_latency_target_out_of_reach_of_a_multiple_halves_it(tmp_path) -> None:
    # multiples of 16 leave ResNet-20's 16-channel groups whole: 0.3 needs finer widths
    model = create_model("resnet20").eval()
    source = _source(tmp_path, ScriptedBackend(quantum=1), grid=16)
    graph = ChannelGraph(model, INPUT)
    allocation = Allocation(latency=source, round_to=16)
    result = create_method("l1").plan(graph, None, Target("latency", 0.3), allocation)
    kept = result.plan.kept(graph)
    widths = [kept[group.root] for group in graph.prunable_groups]
    assert any(width % 16 for width in widths)  # some group went below a multiple of 16
    assert abs(result.achieved / 0.3 - 1) <= 0.03


def test_each_timed_run_follows_an_untimed_one_of_the_same_model() -> None:
    from secateurs.measurement.backends import interleaved

    calls: list[str] = []
    times = interleaved([lambda: calls.append("a"), lambda: calls.append("b")], 1, 2)
    # warm-up once each, then per round: a untimed, a timed, b untimed, b timed
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 2
    assert len(times) == 2 and all(len(found) == 2 and min(found) >= 0 for found in times)
