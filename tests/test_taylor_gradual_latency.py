"""Gradual Taylor to a latency target (after HALP) on a scripted latency backend: the budget
schedule, removals only between efficient widths and never under the floor, the last step
measured and corrected when the table is 10% off, and a resumed run that replays the recorded
decisions without timing them again."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from latency_helpers import ScriptedBackend, scripted_ms
from secateurs.errors import SecateursError
from secateurs.latency import LatencySource, LatencySpec
from secateurs.latency.gradual import GradualLatency, latency_budgets
from secateurs.models import create_model
from secateurs.pruning import ChannelGraph, remove_channels
from secateurs.pruning.taylor_gradual_latency import (
    GradualTaylorLatency,
    LatencySchedule,
    step_iterations,
)

INPUT = (3, 32, 32)


class SkewedBackend(ScriptedBackend):
    """The scripted latency, except that a pruned model timed against its dense one (a whole
    model's measured ratio) takes ``skew`` times as long as the table and calibration say."""

    def __init__(self, skew: float = 1.0, quantum: int = 1) -> None:
        super().__init__(quantum)
        self.skew = skew

    def time(self, items, timing):
        found = super().time(items, timing)
        whole = [sum(isinstance(m, nn.Conv2d) for m in module.modules()) > 1 for module, _ in items]
        if len(items) == 2 and all(whole):
            found[1] *= self.skew
        return found


def started(
    tmp_path: Path, backend: ScriptedBackend, target: float, steps: int, grid: int = 8, **schedule
):
    """ResNet-20 and a latency callback on ``backend`` (table grid 8), started for a run of
    4 x ``steps`` iterations: the steps at every second iteration of its first half."""
    torch.manual_seed(0)
    model = create_model("resnet20")
    spec = LatencySpec(backend="scripted", grid=grid, cache=tmp_path)
    latency = GradualLatency(LatencySource(spec, backend))
    callback = GradualTaylorLatency(LatencySchedule(target, steps, **schedule), INPUT, latency)
    trainer = SimpleNamespace(
        model=model, config=SimpleNamespace(epochs=4), steps_per_epoch=steps, context=None
    )
    callback.on_train_start(trainer)
    return model, callback


def drive(callback: GradualTaylorLatency, seed: int = 0, check=None) -> None:
    """Iterations with random gate contributions until the last step; ``check`` after each."""
    generator = torch.Generator().manual_seed(seed)
    while not callback.over:
        for group in callback.graph.prunable_groups:
            noise = torch.rand(group.size, generator=generator, dtype=torch.float64)
            callback.sums_[group.root] += noise
        steps = callback.steps_
        callback.after_step()
        if check is not None and callback.steps_ > steps:
            check(callback)


def measured(model: nn.Module, callback: GradualTaylorLatency, skew: float = 1.0) -> float:
    pruned = copy.deepcopy(model).eval()
    remove_channels(ChannelGraph(pruned, INPUT), callback.plan())
    shape = (1, *INPUT)
    return skew * scripted_ms(pruned, shape, 1) / scripted_ms(model.eval(), shape, 1)


def test_the_budget_descends_exponentially_to_the_target_in_k_steps(tmp_path) -> None:
    budgets = latency_budgets(0.4, 5)
    assert len(budgets) == 5 and budgets[-1] == pytest.approx(0.4)
    assert budgets[0] == pytest.approx(0.4**0.2) and budgets[0] < 1
    ratios = [b / a for a, b in zip([1.0, *budgets], budgets, strict=False)]
    assert ratios == pytest.approx([0.4**0.2] * 5)  # the same factor each step: exponential
    assert step_iterations(LatencySchedule(0.5, 5, prune_until=0.5), 100) == [10, 20, 30, 40, 50]
    with pytest.raises(SecateursError, match="5 pruning steps need at least 5 iterations"):
        step_iterations(LatencySchedule(0.5, 5, prune_until=0.5), 8)
    _, callback = started(tmp_path, ScriptedBackend(), 0.5, 4)
    drive(callback)
    record = callback.record()
    assert [d["budget"] for d in record["decisions"]] == pytest.approx(latency_budgets(0.5, 4))
    assert [d["iteration"] for d in record["decisions"]] == [2, 4, 6, 8] == record["iterations"]
    predicted = [d["predicted"] for d in record["decisions"]]
    assert predicted == sorted(predicted, reverse=True) and predicted[0] < 1


def test_removals_stop_only_at_efficient_widths_and_never_under_the_floor(tmp_path) -> None:
    # channels padded to 8: widths off a multiple of 8 cost as much as the next multiple
    backend = ScriptedBackend(quantum=8)
    _, callback = started(tmp_path, backend, 0.6, 4, min_channels=24)
    graph = callback.latency.cpu_graph(callback.graph)
    efficient = callback.latency.source.efficient_widths(graph)
    sizes = {group.root: group.size for group in graph.prunable_groups}
    assert any(set(range(1, 33)) - set(widths) for widths in efficient.values())
    seen: set[tuple[str, int]] = set()

    def check(callback: GradualTaylorLatency) -> None:
        for root, mask in callback.removed_.items():
            kept = int((~mask).sum())
            assert kept == sizes[root] or kept in efficient[root], (root, kept)
            assert kept >= min(sizes[root], 24), (root, kept)
            seen.add((root, kept))

    drive(callback, check=check)
    assert any(kept < sizes[root] for root, kept in seen)  # it pruned
    assert any(kept == 24 for _, kept in seen)  # down to the floor, not under it
    assert abs(callback.measured_ratio / 0.6 - 1) <= 0.03


@pytest.mark.parametrize(("skew", "steps"), [(1.1, 1), (0.9, 1), (1.1, 4)])
def test_the_last_step_is_measured_and_corrected_to_within_3_percent(
    tmp_path, skew: float, steps: int
) -> None:
    """The table (and its calibration) is 10% off the whole model's measured latency: a single
    step lands 10% off, so it is corrected (planned again to remove more, or fewer); over
    several steps the earlier measurements already scale the aim."""
    backend = SkewedBackend(skew)
    model, callback = started(tmp_path, backend, 0.5, steps, grid=16)
    drive(callback)
    last = callback.decisions_[-1]
    assert last["measured"] == pytest.approx(skew * last["predicted"], rel=1e-6)
    if steps == 1:
        assert abs(last["measured"] / 0.5 - 1) > 0.03 and last["corrections"]
        first = last["corrections"][0]
        assert first["aim"] == pytest.approx(last["predicted"] * 0.5 / last["measured"])
        # the step planned again from where it started: more channels when it measured slow
        planned, replanned = (sum(len(c) for _, c in m) for m in (last["moves"], first["moves"]))
        assert (replanned > planned) == (skew > 1) and (replanned < planned) == (skew < 1)
    assert abs(callback.measured_ratio / 0.5 - 1) <= 0.03
    assert measured(model, callback, skew) == pytest.approx(callback.measured_ratio, rel=1e-9)
    record = callback.record()
    assert (
        record["target_kind"] == "latency"
        and record["measured_ratio"] == (last.get("chosen", last)["measured"])
    )


@contextmanager
def interrupted_after_first_checkpoint(monkeypatch) -> Iterator[None]:
    """The run stops as a crash would right after its first epoch's checkpoint (its epochs,
    and so its pruning schedule, left as they are)."""
    from secateurs.train import trainer as trainer_module

    original = trainer_module.save_checkpoint

    def save_then_stop(state, path):
        original(state, path)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "save_checkpoint", save_then_stop)
        yield


def test_a_resumed_run_replays_its_recorded_decisions_without_timing_them(
    digits_model: Path, tmp_path: Path, monkeypatch
) -> None:
    """3 epochs, 4 steps over the first half: steps 1-2 in epoch 1, 3-4 in epoch 2. A run cut
    after epoch 1 and resumed equals one never cut, bit for bit, and the resumed run times only
    the steps after its checkpoint (two models per measurement)."""
    import secateurs

    calls: list[int] = []
    original = ScriptedBackend.time

    def counted(self, items, timing):
        calls.append(len(items))
        return original(self, items, timing)

    monkeypatch.setattr(ScriptedBackend, "time", counted)
    model, manifest = secateurs.load(digits_model)
    data = secateurs.load_data("digits", manifest=manifest, train_subset=640)
    images = torch.randn(2, *manifest.input_size)
    options = dict(
        method="taylor-gradual", example_input=images, epochs=3, target_latency=0.6,
        backend="scripted", latency_cache=tmp_path / "cache", steps=4, prune_until=0.5,
        batch_size=64, threads=1, manifest=manifest,
    )  # fmt: skip
    whole = secateurs.prune_while_training(model, data, run_dir=tmp_path / "whole", **options)
    decisions = whole.record.taylor_gradual.state["decisions"]
    assert [d["iteration"] for d in decisions] == [3, 7, 11, 15]  # 10 iterations an epoch
    with interrupted_after_first_checkpoint(monkeypatch), pytest.raises(KeyboardInterrupt):
        secateurs.prune_while_training(model, data, run_dir=tmp_path / "parts", **options)
    calls.clear()
    resumed = secateurs.prune_while_training(model, data, run_dir=tmp_path / "parts", **options)
    after_checkpoint = sum(1 + len(d["corrections"]) for d in decisions[2:])
    assert calls == [2] * after_checkpoint  # steps 1-2 came from the checkpoint, untimed
    assert resumed.record.taylor_gradual == whole.record.taylor_gradual
    assert resumed.achieved == whole.achieved and abs(whole.achieved / 0.6 - 1) <= 0.03
    first, second = whole.model.state_dict(), resumed.model.state_dict()
    assert list(first) == list(second)
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_the_run_reports_the_latency_target_the_measured_ratio_and_each_step(
    digits_model: Path, tmp_path: Path
) -> None:
    from secateurs.report import read_report
    from secateurs.runs.training_time_run import TrainingJob, run_training_time

    job = TrainingJob.for_method(
        "taylor-gradual", model=digits_model, out=tmp_path / "run", data="digits", epochs=2,
        target_latency=0.6, backend="scripted", latency_cache=tmp_path / "cache", steps=3,
        train_subset=640, batch_size=64, threads=1, latency_repeats=0,
    )  # fmt: skip
    job.check()
    run_training_time(job)
    pruning = read_report(tmp_path / "run").pruning
    assert (pruning.target_kind, pruning.target_ratio) == ("latency", 0.6)
    record = pruning.details["taylor_gradual"]
    assert pruning.achieved_ratio == record["measured_ratio"]
    assert abs(pruning.achieved_ratio / 0.6 - 1) <= 0.03
    assert record["iterations"] == [3, 6, 10] and record["steps"] == 3
    assert [d["budget"] for d in record["decisions"]] == pytest.approx(latency_budgets(0.6, 3))
    assert all({"predicted", "measured", "removed"} <= set(d) for d in record["decisions"])
    assert pruning.details["latency_model"] == {"backend": "scripted", "batch": 1}
    assert pruning.method_params == {"momentum": 0.9, "steps": 3, "prune_until": 0.5}
    with pytest.raises(SecateursError, match="--per-step sizes MACs steps"):
        TrainingJob.for_method(
            "taylor-gradual", model=digits_model, out=tmp_path / "bad", data="digits",
            target_latency=0.6, per_step=4,
        ).make_method((3, 8, 8))  # fmt: skip


@pytest.mark.slow
def test_under_torchrun_rank_0_times_and_both_ranks_apply_its_decisions(
    digits_model: Path, tmp_path: Path, child_env: dict[str, str]
) -> None:
    import json
    import subprocess
    import sys

    from secateurs.report import read_report
    from secateurs.runs.training import RANKS_FILE

    out = tmp_path / "run"
    script = Path(__file__).parent / "ddp_gradual_latency.py"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(script), str(digits_model), str(out)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=child_env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    timed = {rank: json.loads((tmp_path / f"timed-{rank}.json").read_text()) for rank in "01"}
    assert timed["0"] > 0 and timed["1"] == 0  # rank 1 never timed anything
    digests = json.loads((out / "train" / RANKS_FILE).read_text())["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # the same channels removed on both
    record = read_report(out).pruning.details["taylor_gradual"]
    assert record["pruning_steps"] == 2 and abs(record["measured_ratio"] / 0.6 - 1) <= 0.03


class Scripted:
    """A latency side that decides what the test says: step 1 removes channels 0 and 1 of the
    stem's group, step 2 gives channel 0 back."""

    def warm(self, graph) -> None:
        return None

    def prune_step(self, step) -> dict:
        figures = {"step": step.index + 1, "budget": 1.0, "aim": 1.0, "predicted": 1.0}
        figures |= {"measured": 1.0, "moves": [], "corrections": []}
        if step.index == 0:
            return {**figures, "removed": [["conv1", 0], ["conv1", 1]], "restored": []}
        return {**figures, "removed": [], "restored": [["conv1", 0]]}


def test_a_channel_given_back_after_it_was_zeroed_trains_again() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20")
    callback = GradualTaylorLatency(LatencySchedule(0.5, 2), INPUT, Scripted())
    trainer = SimpleNamespace(
        model=model, config=SimpleNamespace(epochs=4), steps_per_epoch=1, context=None
    )
    callback.on_train_start(trainer)  # steps at iterations 1 and 2
    callback.after_step()
    weights = model.conv1.weight.detach()
    assert float(model.bn1.weight.detach()[0]) == 0 and float(weights[0].abs().sum()) == 0
    callback.after_step()
    assert callback.removed_["conv1"][:2].tolist() == [False, True]
    assert float(model.bn1.weight.detach()[0]) == 1 and float(model.bn1.weight.detach()[1]) == 0
    assert float(weights[0].abs().min()) > 0 and float(weights[1].abs().sum()) == 0
    assert float(weights[0].abs().max()) <= 1 / 27**0.5  # PyTorch's initial bound: 3 x 3 x 3
    model.train()
    model(torch.randn(4, *INPUT)).square().sum().backward()
    assert float(model.conv1.weight.grad[0].abs().sum()) > 0  # channel 0 learns again


def test_a_step_carries_the_last_error_clamped_and_an_unreachable_target_is_warned_about(
    tmp_path, caplog
) -> None:
    from secateurs.latency.gradual import carried_error

    assert carried_error([]) == 1.0
    assert carried_error([{"measured": 0.55, "predicted": 0.5}]) == pytest.approx(1.1)
    assert carried_error([{"measured": 1.41, "predicted": 0.9}]) == 1.25  # a noisy timing
    assert carried_error([{"measured": 0.3, "predicted": 0.9}]) == 0.8
    # every group keeps at least 16 channels: ResNet-20's 16-channel groups stay whole
    _, callback = started(tmp_path, ScriptedBackend(), 0.1, 2, min_channels=16)
    with caplog.at_level("WARNING"):
        drive(callback)
    assert callback.measured_ratio > 0.2
    assert "finds nothing more to remove that saves time" in caplog.text
