"""Campfire's pieces: the AGP ramp, exact counts per structure chosen by magnitude, masks that
never revive and freeze at the end, zero gradients and momentum on masked weights, the budget,
filter-level masks equal to removal, the packed window form and the CSR path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from secateurs.errors import SecateursError
from secateurs.models import create_model
from secateurs.pruning.campfire.budget import nonzero_macs, plan_budgets
from secateurs.pruning.campfire.callback import (
    CampfireCallback,
    CampfireSettings,
    parse_granularity,
)
from secateurs.pruning.campfire.compaction import compact_filters
from secateurs.pruning.campfire.filters import FilterLevel
from secateurs.pruning.campfire.schedule import AGPSchedule, agp_fraction
from secateurs.pruning.campfire.sparse_conv import CSRConv2d
from secateurs.pruning.campfire.structures import structure_keep
from secateurs.pruning.campfire.window_store import load_windows, save_windows

INPUT = (3, 16, 16)


def test_agp_ramp_at_start_middle_and_end() -> None:
    assert agp_fraction(99, 100, 200) == 0.0
    assert agp_fraction(100, 100, 200) == 0.0
    assert agp_fraction(150, 100, 200) == pytest.approx(0.875)  # 1 - 0.5^3
    assert agp_fraction(175, 100, 200) == pytest.approx(1 - 0.25**3)
    assert agp_fraction(200, 100, 200) == 1.0
    assert agp_fraction(10_000, 100, 200) == 1.0


def test_schedule_updates_every_interval_then_freezes() -> None:
    schedule = AGPSchedule.from_epochs(1, 2.5, steps_per_epoch=10, interval=4)
    assert (schedule.start, schedule.end) == (10, 25)
    assert [s for s in range(40) if schedule.updates_at(s)] == [10, 14, 18, 22, 25]
    # between updates the last update's value holds
    assert schedule.fraction(16) == pytest.approx(agp_fraction(14, 10, 25))
    assert schedule.fraction(25) == 1.0 and schedule.frozen(25) and not schedule.frozen(24)
    with pytest.raises(SecateursError, match="start before it ends"):
        AGPSchedule(5, 5, 1)


def test_window_keeps_the_same_count_in_every_kernel_by_magnitude() -> None:
    weight = torch.randn(6, 5, 3, 3)
    weight[0, 0] = torch.arange(1.0, 10.0).reshape(3, 3)  # 1..9: the 4 smallest are 1..4
    keep = structure_keep(weight, "window", 4)
    assert keep.shape == weight.shape
    assert keep.reshape(30, 9).sum(1).tolist() == [5] * 30
    assert keep[0, 0].flatten().tolist() == [False] * 4 + [True] * 5


def test_kernel_keeps_the_same_count_of_whole_kernels_per_filter() -> None:
    weight = torch.randn(4, 8, 3, 3)
    weight[2, [1, 6]] *= 1e-3  # the two weakest kernels of filter 2
    keep = structure_keep(weight, "kernel", 3)
    per_kernel = keep.reshape(4, 8, 9)
    assert bool((per_kernel.all(2) | ~per_kernel.any(2)).all())  # whole kernels only
    assert per_kernel.all(2).sum(1).tolist() == [5, 5, 5, 5]
    assert not per_kernel[2, 1].any() and not per_kernel[2, 6].any()


def test_a_pruned_entry_never_revives() -> None:
    weight = torch.randn(2, 2, 3, 3)
    first = structure_keep(weight, "window", 3)
    revived = weight.clone()
    revived[~first] = 100.0  # larger than anything kept
    second = structure_keep(revived, "window", 5, previous=first)
    assert not bool((second & ~first).any())
    assert second.reshape(4, 9).sum(1).tolist() == [4] * 4


def test_granularities_are_checked() -> None:
    assert parse_granularity("window+kernel") == ("kernel", "window")
    with pytest.raises(SecateursError, match="choose window"):
        parse_granularity("filter+window")
    with pytest.raises(SecateursError, match="start before it ends"):
        CampfireSettings(start_epoch=5, end_epoch=4, epochs=10)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("resnet20", num_classes=10).eval()


def test_a_macs_target_becomes_window_counts_meeting_it() -> None:
    model = _model()
    budgets = plan_budgets(model, INPUT, ("window",), target_macs=0.5)
    names = [b.name for b in budgets]
    assert "conv1" not in names and "fc" not in names  # first and last exempt
    assert all(set(b.pruned) == {"window"} for b in budgets)
    counts = {b.pruned["window"] for b in budgets}
    assert counts <= {4, 5}  # 3x3 kernels: floor and ceiling of the continuous count
    keep = {
        b.name: structure_keep(model.get_submodule(b.name).weight, "window", b.pruned["window"])
        for b in budgets
    }
    from secateurs.measurement import count_cost

    ratio = nonzero_macs(model, INPUT, keep) / count_cost(model, INPUT)["macs"]
    # at or over the target (ceilings only while under it), within one 3x3 window of a layer
    assert 0.5 <= ratio <= 0.5 + 0.02


def test_sparsity_out_of_reach_is_refused() -> None:
    with pytest.raises(SecateursError, match="Campfire reaches"):
        plan_budgets(_model(), INPUT, ("kernel",), target_macs=0.01)
    with pytest.raises(SecateursError, match="not a layer Campfire prunes"):
        plan_budgets(_model(), INPUT, ("kernel",), layer_sparsity={"nope": 0.5})


def _drive(callback: CampfireCallback, model: nn.Module, steps: int, lr: float = 0.1):
    """Train ``model`` for ``steps`` SGD steps (momentum) with the callback's hooks, as the
    trainer calls them; returns the optimizer."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)

    class Loop:  # what the hooks read from the trainer
        pass

    loop = Loop()
    loop.optimizer = optimizer
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        images = torch.randn(4, *INPUT, generator=generator)
        loss = model(images).square().mean()
        optimizer.zero_grad()
        loss.backward()
        callback.after_backward(loop)
        optimizer.step()
        callback.after_step(loop)
    return optimizer


def test_masked_weights_their_gradients_and_momentum_stay_zero_and_masks_freeze() -> None:
    model = _model().train()
    settings = CampfireSettings("kernel", target_macs=None, sparsity=0.5, epochs=4)
    settings.interval = 2
    callback = CampfireCallback(settings, INPUT)
    callback.prepare(model, steps_per_epoch=3)  # ramp over steps 0..6, frozen from 6
    optimizer = _drive(callback, model, 6)
    assert callback.frozen
    name = "layer2.0.conv1"
    conv = model.get_submodule(name)
    keep = callback.keep[name].clone()
    assert (~keep).float().mean().item() == pytest.approx(0.5)  # 16 of 32 kernels per filter
    assert float(conv.weight.detach()[~keep].abs().max()) == 0.0
    assert float(optimizer.state[conv.weight]["momentum_buffer"][~keep].abs().max()) == 0.0
    assert float(conv.weight.grad[~keep].abs().max()) == 0.0
    _drive(callback, model, 5, lr=1.0)  # after the end: weights move, masks do not
    assert torch.equal(callback.keep[name], keep)
    assert float(conv.weight.detach()[~keep].abs().max()) == 0.0 and callback.updates == 3


def test_filter_level_masked_model_equals_the_model_with_channels_removed() -> None:
    model = _model()
    level = FilterLevel(model, INPUT, target_macs=0.5)
    level.update(1.0)
    with torch.no_grad():
        for parameter, mask in level.parameter_masks():
            parameter.mul_(mask)
    images = torch.randn(3, *INPUT)
    with torch.no_grad():
        masked = model(images)
        compact_filters(model, INPUT, level.plan())
        pruned = model(images)
    from secateurs.measurement import count_cost

    assert torch.allclose(masked, pruned, rtol=1e-4, atol=1e-5)
    assert count_cost(model, INPUT)["macs"] / count_cost(_model(), INPUT)["macs"] == (
        pytest.approx(0.5, abs=0.01)
    )


def test_window_layers_pack_and_unpack_exactly(tmp_path) -> None:
    weight = torch.randn(64, 64, 3, 3)
    keep = structure_keep(weight, "window", 6)
    masked = weight * keep
    size = save_windows(tmp_path / "w.safetensors", {"a": (masked, keep)})
    back = load_windows(tmp_path / "w.safetensors", {"a": (3, 3)})["a"]
    assert torch.equal(back, masked)
    # 3 of 9 float32 values plus a byte of position each: 15 / 36 of the dense bytes, + header
    assert 15 / 36 <= size / (masked.numel() * 4) <= 15 / 36 + 0.01


def test_the_csr_path_computes_the_dense_convolution() -> None:
    conv = nn.Conv2d(6, 5, 3, stride=2, padding=1).eval()
    with torch.no_grad():
        conv.weight.mul_(structure_keep(conv.weight, "window", 6))
    images = torch.randn(2, 6, 9, 9)
    with torch.no_grad():
        assert torch.allclose(CSRConv2d(conv)(images), conv(images), atol=1e-5)


def test_a_ramp_spanning_no_step_says_what_to_change() -> None:
    """One epoch of one step: the default ramp (to half the run) rounds to no step at all."""
    from secateurs.pruning.campfire.schedule import AGPSchedule

    with pytest.raises(SecateursError, match=r"from epoch 0 to 0.5 spans no training step \(1 a"):
        AGPSchedule.from_epochs(0.0, 0.5, steps_per_epoch=1, interval=1)
    assert AGPSchedule.from_epochs(0.0, 0.5, steps_per_epoch=4, interval=1).end == 2
