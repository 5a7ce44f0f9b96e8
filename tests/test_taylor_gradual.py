"""Gradual Taylor (Molchanov et al. 2019's schedule): averaging and momentum against values
worked out by hand, the order and size of each pruning step, the stop at the target, dead
channels staying dead through training, and the trained model equal to its pruned form."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pruning_helpers import relative_difference
from secateurs.errors import SecateursError
from secateurs.pruning import ChannelGraph, remove_channels
from secateurs.pruning.taylor_gradual import GradualSchedule, GradualTaylor

INPUT = (3, 8, 8)


def convnet(width: int = 8) -> nn.Sequential:
    """conv "0" (3->width) BN ReLU conv "3" (width->6) BN ReLU, pooled, linear to 4: two
    groups."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 6, 3, padding=1, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 4),
    )


def prepared(**schedule) -> tuple[nn.Module, GradualTaylor]:
    model = convnet()
    callback = GradualTaylor(GradualSchedule(**schedule), INPUT)
    callback.prepare(model, INPUT)
    return model, callback


def test_scores_are_averaged_over_the_interval_and_smoothed_with_momentum() -> None:
    """interval 2, momentum 0.9. Step 1: sums (4, 2, 6, ...) / 2 -> score (2, 1, 3, ...).
    Step 2: sums (0, 8, 2, ...) / 2 = (0, 4, 1, ...); score = 0.9 (2, 1, 3) + 0.1 (0, 4, 1)
    = (1.8, 1.3, 2.8, ...)."""
    _, callback = prepared(target_macs=0.05, interval=2, momentum=0.9, per_step=1)
    high = torch.full((8,), 100.0, dtype=torch.float64)
    callback.sums_["0"] = torch.cat([torch.tensor([4.0, 2, 6]), high[3:]]).double()
    callback.sums_["3"] = torch.full((6,), 100.0, dtype=torch.float64)
    assert callback.prune_step() == [("0", 1)]  # the lowest score, 1
    assert callback.score_["0"][:3].tolist() == pytest.approx([2.0, 1.0, 3.0])
    assert all(float(total.abs().sum()) == 0 for total in callback.sums_.values())  # reset
    callback.sums_["0"] = torch.cat([torch.tensor([0.0, 8, 2]), high[3:]]).double()
    callback.sums_["3"] = torch.full((6,), 100.0, dtype=torch.float64)
    assert callback.prune_step() == [("0", 0)]  # 1.8 is now the lowest alive (1 is gone)
    assert callback.score_["0"][:3].tolist() == pytest.approx([1.8, 1.3, 2.8])


def test_steps_remove_per_step_channels_and_stop_at_the_target() -> None:
    """Each step removes ``per_step`` channels, lowest first across both groups, and pruning
    stops as soon as the predicted MACs are at or under the target."""
    _, callback = prepared(target_macs=0.6, interval=1, momentum=0.0, per_step=2)
    scores = {"0": torch.arange(8.0).double() + 0.5, "3": torch.arange(6.0).double()}
    removed = []
    while not callback.over:
        callback.sums_ = {root: value.clone() for root, value in scores.items()}
        step = callback.prune_step()
        assert len(step) <= 2
        removed += step
    expected = sorted((float(v), root, c) for root, s in scores.items() for c, v in enumerate(s))
    assert removed == [(root, c) for _, root, c in expected[: len(removed)]]
    assert callback.predicted_macs() <= 0.6
    callback.removed_[removed[-1][0]][removed[-1][1]] = False  # one fewer: above the target
    assert callback.predicted_macs() > 0.6


def test_a_group_never_goes_under_min_channels() -> None:
    _, callback = prepared(
        target_macs=0.01, interval=1, momentum=0.0, per_step=100, min_fraction=0, ends_fraction=0
    )
    callback.sums_ = {"0": torch.zeros(8).double(), "3": torch.ones(6).double()}
    callback.prune_step()
    assert callback.over  # nothing left it may remove
    assert int((~callback.removed_["0"]).sum()) == 1 and int((~callback.removed_["3"]).sum()) == 1
    with pytest.raises(SecateursError):
        GradualSchedule(target_macs=1.5)


def fake_trainer(model: nn.Module) -> SimpleNamespace:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    return SimpleNamespace(model=model, optimizer=optimizer)


def test_training_keeps_removed_channels_dead_and_equals_the_pruned_model() -> None:
    """Real gradients, interval 3, 2 channels a step, 36 iterations in training mode: the
    removed channels' weights stay zero after every step, the target is met, and the trained
    model in eval mode computes what its physically pruned copy computes."""
    model, callback = prepared(target_macs=0.5, interval=3, momentum=0.9, per_step=2)
    trainer = fake_trainer(model)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(36):
        images = torch.randn(8, *INPUT, generator=generator)
        labels = torch.randint(0, 4, (8,), generator=generator)
        trainer.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        callback.after_backward(trainer)
        trainer.optimizer.step()
        callback.after_step(trainer)
        for index, root in ((0, "0"), (1, "0"), (3, "3"), (4, "3")):
            dead = callback.removed_[root]
            assert float(model[index].weight.detach()[dead].abs().sum()) == 0.0
    assert callback.over and callback.predicted_macs() <= 0.5
    assert callback.steps_ >= 2 and callback.finished_step_ <= 36
    model.eval()
    pruned = copy.deepcopy(model)
    remove_channels(ChannelGraph(pruned, INPUT), callback.plan())
    images = torch.randn(4, *INPUT, generator=generator)
    with torch.no_grad():
        assert relative_difference(model(images), pruned(images)) < 1e-5


def test_state_round_trips_through_a_checkpoint() -> None:
    _, callback = prepared(target_macs=0.5, interval=1, momentum=0.5, per_step=1)
    callback.sums_ = {"0": torch.arange(8.0).double(), "3": torch.arange(6.0).double() + 9}
    callback.prune_step()
    state = copy.deepcopy(callback.state_dict())
    _, resumed = prepared(target_macs=0.5, interval=1, momentum=0.5, per_step=1)
    resumed.load_state_dict(state)
    assert resumed.plan() == callback.plan() and resumed.steps_ == 1
    assert torch.equal(resumed.score_["0"], callback.score_["0"])


def test_a_plan_leaving_a_layer_under_a_tenth_of_its_width_is_warned_about(caplog) -> None:
    """BatchNorm scales 100x smaller in the first group: at 10% of the MACs, global ranking
    takes 15 of its 16 channels (1/16 < 10%) and the warning names the group, 1 of 16 kept."""
    from secateurs.pruning import Allocation, Target
    from secateurs.pruning.channel_scores import thin_groups
    from secateurs.pruning.methods import create_method

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    ).eval()  # fmt: skip
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(0.001, 0.01, 16))
        model[4].weight.copy_(torch.linspace(1.0, 2.0, 16))
    graph = ChannelGraph(model, INPUT)
    with caplog.at_level("WARNING"):
        allocation = Allocation(min_fraction=0, ends_fraction=0)  # no floor but one channel
        plan = create_method("bn_scale").plan(graph, None, Target("macs", 0.1), allocation).plan
    assert thin_groups(graph, plan) == [("0", 1, 16)]
    assert "under 10% of their channels: 0 1/16" in caplog.text
    assert thin_groups(graph, plan, fraction=0.05) == []


def test_default_step_grows_to_reach_the_target_in_half_the_run() -> None:
    """convnet: 8 + 6 = 14 prunable channels; target 0.25 -> estimated (1 - sqrt(0.25)) * 14 = 7
    to remove. 2 epochs of 10 iterations at interval 3: 20 // 2 // 3 = 3 steps -> ceil(7 / 3) = 3
    a step. 100 epochs: 1000 // 2 // 3 = 166 steps -> 1 (0.5% of 14, rounded up). Given
    explicitly, the step is kept."""

    def started(epochs: int, **schedule) -> GradualTaylor:
        model, callback = prepared(target_macs=0.25, interval=3, **schedule)
        trainer = SimpleNamespace(
            model=model, config=SimpleNamespace(epochs=epochs), steps_per_epoch=10
        )
        callback.on_train_start(trainer)
        return callback

    assert started(2).per_step_ == 3
    assert started(100).per_step_ == 1
    assert started(2, per_step=2).per_step_ == 2


def test_the_report_counts_channels_per_group_and_a_thin_group_is_warned_about(caplog) -> None:
    """15 of the first group's 16 channels removed (1/16 < 10%: warned, named) and 2 of the
    second's 6 (4/6: not); the record says before and after per group, surgery did it."""
    from secateurs.measurement.latency import LatencySettings
    from secateurs.pruning.taylor_gradual_method import GradualTaylorMethod

    model = convnet(width=16)
    method = GradualTaylorMethod(GradualSchedule(target_macs=0.5), INPUT, epochs=1)
    method.callback().prepare(model, INPUT)
    method.callback().removed_["0"][1:] = True
    method.callback().removed_["3"][:2] = True
    with caplog.at_level("WARNING"):
        compaction = method.compact(model, INPUT, LatencySettings(repeats=0))
    record = method.pruning_record(compaction)
    assert record.channels == {"0": {"before": 16, "after": 1}, "3": {"before": 6, "after": 4}}
    assert "1 group(s) under 10%" in caplog.text and "0 1/16" in caplog.text
    assert "3 4/6" not in caplog.text
    assert (model[0].out_channels, model[3].out_channels) == (1, 4)
