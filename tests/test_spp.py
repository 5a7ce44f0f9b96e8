"""SPP: the increment function, the probability update, Monte Carlo masks (rank-independent, non-
destructive), exact resumption, the compact convolution, compaction and the end-to-end callback."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ci_guard import require
from secateurs.measurement.cost import count_cost
from secateurs.measurement.latency import LatencySettings
from secateurs.models import create_model
from secateurs.pruning.compaction.compact_conv import CompactConv2d
from secateurs.pruning.compaction.dead_channels import max_relative_difference
from secateurs.pruning.spp import (
    SPPCallback,
    SPPState,
    compact_conv,
    compact_model,
    increment,
    increments,
    spp_macs,
)
from secateurs.pruning.spp.cost import ratios_for_macs
from secateurs.pruning.spp.groups import ConvColumns, find_layers
from secateurs.pruning.spp.method import SPPMethod
from secateurs.runs.train_run import run_training
from secateurs.store import load_model
from secateurs.train.callback import Callback
from secateurs.train.config import TrainConfig
from secateurs.train.distributed import DistributedContext

A, U = 0.05, 0.25
FAST = LatencySettings(batch_sizes=(1, 4), threads=1, warmup=1, repeats=3)


# -- the increment function ---------------------------------------------------------------------
@pytest.mark.parametrize("remaining", [1, 2, 7, 100, 1000])
def test_increment_known_values(remaining: int) -> None:
    alpha = math.log(2 / U) / remaining
    centre = -math.log(U) / alpha
    assert increment(0, A, U, remaining) == pytest.approx(A, abs=1e-12)
    assert increment(centre, A, U, remaining) == pytest.approx(U * A, abs=1e-12)
    assert increment(remaining, A, U, remaining) == pytest.approx(0.0, abs=1e-12)
    assert increment(remaining + 0.5, A, U, remaining) < 0
    assert increment(2 * remaining, A, U, remaining) < 0
    # symmetric about (N_c, uA), monotone decreasing
    for rank in (0.3 * remaining, 0.9 * centre):
        mirrored = increment(2 * centre - rank, A, U, remaining)
        assert increment(rank, A, U, remaining) + mirrored == pytest.approx(2 * U * A, abs=1e-12)
    vector = increments(2 * remaining + 1, A, U, remaining)
    assert torch.all(vector[1:] < vector[:-1])
    expected = [increment(r, A, U, remaining) for r in range(2 * remaining + 1)]
    assert vector.tolist() == pytest.approx(expected, abs=1e-15)
    with pytest.raises(ValueError):
        increment(0, A, U, 0)


# -- the probability update ---------------------------------------------------------------------
def toy_layer(norms: list[float]) -> ConvColumns:
    """A 1x1 convolution with one output channel whose column i has L1 norm ``norms[i]``."""
    conv = nn.Conv2d(len(norms), 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(norms).view(1, -1, 1, 1))
    return ConvColumns("toy", conv)


def test_probabilities_move_as_specified_on_a_toy_layer() -> None:
    layer = toy_layer([3.0, 1.0, 4.0, 2.0])  # ranks 2, 0, 3, 1
    state = SPPState([layer], [0.5], A=A, u=U)  # ceil(0.5 * 4) = 2 to prune: N_rem = 2
    assert state.target_count(0) == 2
    state.update()
    # alpha = log(8)/2, N_c = 4/3: delta(0) = A, delta(1) = A/sqrt(8), delta(2) = 0,
    # delta(3) = 2uA - A sqrt(2) < 0, clipped at 0
    expected = [0.0, A, 0.0, A / math.sqrt(8)]
    assert state.probability[0].tolist() == pytest.approx(expected, abs=1e-15)
    assert increment(3, A, U, 2) == pytest.approx(2 * U * A - A * math.sqrt(2), abs=1e-15)
    assert not state.pruned[0].any()

    # column 1 reaches p = 1: pruned for good, and it leaves the ranking
    state.probability[0][1] = 0.97
    newly = state.update()
    assert newly[0].tolist() == [False, True, False, False]
    assert state.probability[0][1] == 1.0 and not state.done[0]
    before = state.probability[0].clone()
    state.update()  # N_rem = 1 over columns 0, 2, 3: ranks 1, 2, 0 -> +A, 0 (delta(1)=0), <0
    after = state.probability[0]
    assert after[1] == 1.0 and state.pruned[0][1]
    assert after[3] == pytest.approx(float(before[3]) + A, abs=1e-15)
    assert after[0] == pytest.approx(float(before[0]) + increment(1, A, U, 1), abs=1e-15)
    assert after[2] == 0.0  # negative increment, clipped

    # the second pruned column ends the layer: survivors go back to 0, masks are fixed
    state.probability[0][3] = 0.999
    state.update()
    assert state.pruned[0].tolist() == [False, True, False, True]
    assert state.done[0] and state.over
    assert state.probability[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    generator = torch.Generator().manual_seed(0)
    assert state.draw(generator)[0].tolist() == [True, False, True, False]


def test_a_layer_never_overshoots_or_empties() -> None:
    state = SPPState([toy_layer([1.0, 2.0, 3.0])], [0.5])
    state.probability[0][:] = 0.99  # all three would reach 1 at once
    newly = state.update()
    assert newly[0].tolist() == [True, True, False]  # ceil(1.5) = 2, lowest ranks first
    assert state.done[0]
    assert SPPState([toy_layer([1.0, 2.0])], [0.99]).target_count(0) == 1  # N - 1 at most


def test_oneshot_prunes_the_smallest_groups_at_once() -> None:
    state = SPPState([toy_layer([4.0, 1.0, 3.0, 0.5, 2.0]), toy_layer([1.0, 2.0])], [0.5, 0.0])
    newly = state.prune_now()
    assert newly[0].tolist() == [False, True, False, True, True]  # ceil(2.5) = 3 smallest
    assert newly[1].tolist() == [False, False]
    assert state.over and state.probability[0].tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert state.update()[0].tolist() == [False] * 5  # nothing moves afterwards


def test_oneshot_callback_zeroes_before_the_first_iteration() -> None:
    model = small_convnet()
    norms = {name: model.get_submodule(name).weight.abs().sum(0).flatten() for name in ("3", "6")}
    callback = SPPCallback("column", ratio=0.5, seed=0, oneshot=True, input_size=SMALL_INPUT)
    callback.prepare(model, SMALL_INPUT)
    assert callback.state.over and callback.finished_step_ == 0
    for name, keep in callback.keep_masks().items():
        assert torch.all(model.get_submodule(name).weight[~keep] == 0)
        pruned = ~keep.any(0).flatten()
        count = math.ceil(0.5 * pruned.numel())
        smallest = torch.argsort(norms[name], stable=True)[:count]
        assert sorted(torch.nonzero(pruned).flatten().tolist()) == sorted(smallest.tolist())


# -- Monte Carlo masks --------------------------------------------------------------------------
def small_convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 12, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(12),
        nn.ReLU(),
        nn.Conv2d(12, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )


SMALL_INPUT = (3, 8, 8)
# small_convnet's cost on SMALL_INPUT, by hand (Torch-Pruning's counting, see test_measure)
SMALL_CONVNET_MACS = (
    8 * 3 * 9 * 8 * 8  # conv "0", 3 -> 8 at 8x8
    + 3 * 8 * 8 * 8  # its BatchNorm (2 per element) and ReLU (1 per element)
    + 12 * 8 * 9 * 4 * 4  # conv "3", 8 -> 12, stride 2: 4x4
    + 3 * 12 * 4 * 4
    + 16 * 12 * 9 * 4 * 4  # conv "6", 12 -> 16 at 4x4
    + 3 * 16 * 4 * 4
    + 16 * 4 * 4  # average pooling, one per input element
    + 16 * 4
    + 4  # the linear layer and its bias
)
SMALL_CONVNET_PARAMS = 8 * 3 * 9 + 2 * 8 + 12 * 8 * 9 + 2 * 12 + 16 * 12 * 9 + 2 * 16 + 16 * 4 + 4


def fake_trainer(model: nn.Module, rank: int = 0, lr: float = 0.1) -> SimpleNamespace:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    return SimpleNamespace(
        model=model,
        optimizer=optimizer,
        context=DistributedContext(rank, 2),
        train_loader=SimpleNamespace(image_set=SimpleNamespace(input_size=SMALL_INPUT)),
    )


def train_steps(callback: SPPCallback, trainer, steps: int, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        images = torch.randn(8, *SMALL_INPUT, generator=generator)
        labels = torch.randint(0, 4, (8,), generator=generator)
        callback.before_step(trainer)
        loss = F.cross_entropy(trainer.model(images), labels)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        callback.after_backward(trainer)
        trainer.optimizer.step()
        callback.after_step(trainer)


def test_masks_are_the_same_on_every_rank() -> None:
    """The draw uses only the callback's generator, seeded without the rank: two ranks (fake
    trainers with rank 0 and 1) see identical masks and weights; another seed differs."""
    results = []
    for rank, seed in ((0, 3), (1, 3), (0, 4)):
        model = small_convnet()
        trainer = fake_trainer(model, rank)
        callback = SPPCallback("column", ratio=0.5, seed=seed, interval=1, A=0.3)
        callback.on_train_start(trainer)
        train_steps(callback, trainer, 4)
        callback.before_step(trainer)  # the masked weights of the 5th draw
        masked = [p.detach().clone() for p in model.parameters()]
        callback.restore()
        results.append((masked, callback.state.probability, callback.state.pruned))
    for a, b in zip(results[0][0], results[1][0], strict=True):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(results[0][2], results[1][2], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(results[0][0], results[2][0], strict=True))


def test_masking_is_non_destructive() -> None:
    """Masked-out columns keep their weight and momentum through the step; kept ones move; the
    gradient of masked-out columns is zero; permanently pruned columns stay zero."""
    model = small_convnet()
    trainer = fake_trainer(model)
    callback = SPPCallback("column", ratio=0.5, interval=1000, seed=1)
    callback.on_train_start(trainer)
    callback.state.probability[0][:] = 0.5
    train_steps(callback, trainer, 2)  # momentum buffers exist now
    conv = model[3]
    weight = conv.weight.detach().clone()
    momentum = trainer.optimizer.state[conv.weight]["momentum_buffer"].clone()
    generator = callback.generator_clone()
    keep = callback.state.draw(generator)[0]
    mask = callback.state.layers[0].masks(keep)[0][1].bool()
    assert 0 < int(keep.sum()) < len(keep)
    train_steps(callback, trainer, 1, seed=5)
    assert torch.equal(conv.weight[~mask], weight[~mask])
    assert torch.equal(
        trainer.optimizer.state[conv.weight]["momentum_buffer"][~mask], momentum[~mask]
    )
    assert not torch.equal(conv.weight[mask], weight[mask])

    callback.before_step(trainer)
    loss = model(torch.randn(2, *SMALL_INPUT)).sum()
    loss.backward()
    callback.after_backward(trainer)
    active_mask = callback._active[0][1]
    assert torch.all(conv.weight.grad[~active_mask] == 0)
    callback.restore(trainer.optimizer)

    # permanent pruning zeroes weights and momentum
    lowest = torch.argsort(callback.state.layers[0].scores())[:3]
    callback.state.probability[0][lowest] = 0.999
    callback.interval = 1
    train_steps(callback, trainer, 1)
    pruned = callback.state.pruned[0]
    assert pruned[lowest].all()
    gone = callback.state.layers[0].masks(~pruned)[0][1] == 0
    assert torch.all(conv.weight[gone] == 0)
    assert torch.all(trainer.optimizer.state[conv.weight]["momentum_buffer"][gone] == 0)


def test_masked_channels_keep_their_batchnorm_statistics() -> None:
    """Channel granularity: a channel masked for an iteration outputs zeros; its BatchNorm running
    mean and variance must not learn from them (evaluation runs the unmasked model), while the
    statistics of kept channels move as usual."""
    model = small_convnet()
    trainer = fake_trainer(model)
    callback = SPPCallback("channel", ratio=0.5, interval=1000, seed=3)
    callback.input_size = SMALL_INPUT
    callback.on_train_start(trainer)
    callback.state.probability[0][:] = 0.5
    bn = model[1]
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    keep = callback.state.draw(callback.generator_clone())[0]
    assert 0 < int(keep.sum()) < len(keep)
    train_steps(callback, trainer, 1)
    assert torch.equal(bn.running_mean[~keep], mean[~keep])
    assert torch.equal(bn.running_var[~keep], var[~keep])
    assert not torch.equal(bn.running_mean[keep], mean[keep])
    assert not torch.equal(bn.running_var[keep], var[keep])
    # without the protection the masked channels' variance would have shrunk to 0.9 of itself
    assert torch.all(bn.running_var[~keep] == 1.0)


# -- resumption ---------------------------------------------------------------------------------
def digits_config() -> TrainConfig:
    return TrainConfig(
        model="resnet20",
        data="digits",
        epochs=3,
        batch_size=64,
        train_subset=256,
        test_subset=64,
        deterministic=True,
        threads=1,
        padding=1,
        flip=False,
    )


class Interrupt(Callback):
    """Raises KeyboardInterrupt at the first step of epoch ``at_epoch + 1``; counts the steps
    this process trained."""

    def __init__(self, at_epoch: int | None) -> None:
        self.at_epoch = at_epoch
        self.steps = 0

    def before_step(self, trainer) -> None:
        if trainer.epoch == self.at_epoch:
            raise KeyboardInterrupt
        self.steps += 1


def digits_spp() -> SPPCallback:
    return SPPCallback("column", ratio=0.3, interval=1, A=0.2, seed=7)


@pytest.mark.slow  # three training runs
def test_resumed_spp_run_is_bitwise_identical(tmp_path: Path) -> None:
    spp_a, spp_b = digits_spp(), digits_spp()
    resumed = Interrupt(None)
    try:
        run_training(digits_config(), tmp_path / "a", callbacks=[Interrupt(None), spp_a])
        with pytest.raises(KeyboardInterrupt):
            run_training(digits_config(), tmp_path / "b", callbacks=[Interrupt(1), digits_spp()])
        run_training(digits_config(), tmp_path / "b", resume=True, callbacks=[resumed, spp_b])
    finally:
        torch.use_deterministic_algorithms(False)
    assert spp_a.step_ == spp_b.step_ == 12
    assert resumed.steps == 8  # epochs 2 and 3 of 4 steps: not a silent restart from scratch
    assert any(p.any() for p in spp_a.state.pruned)  # permanent pruning happened during the run
    state_a, state_b = spp_a.state_dict(), spp_b.state_dict()
    assert torch.equal(state_a["generator"], state_b["generator"])
    for key in ("probability", "pruned"):
        for a, b in zip(state_a["spp"][key], state_b["spp"][key], strict=True):
            assert torch.equal(a, b)
    assert state_a["spp"]["done"] == state_b["spp"]["done"]
    weights_a = load_model(tmp_path / "a" / "model")[0].state_dict()
    weights_b = load_model(tmp_path / "b" / "model")[0].state_dict()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name


# -- the compact convolution --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stride", "padding", "kernel", "bias"),
    [(1, 1, 3, False), (2, 1, 3, True), (2, 0, 3, False), (1, 2, 5, True), (2, 0, 1, False)],
)
def test_compact_conv_equals_the_masked_conv(stride, padding, kernel, bias) -> None:
    torch.manual_seed(stride * 10 + padding + kernel)
    conv = nn.Conv2d(12, 10, kernel, stride, padding, bias=bias).eval()
    keep = torch.rand(12, kernel, kernel) > 0.5
    keep[4] = False  # a fully pruned input channel
    keep[1] = keep[7] = True  # whole channels: the plain-convolution part
    keep[0, 0, 0] = True
    with torch.no_grad():
        conv.weight.mul_(keep)
    compact = CompactConv2d(conv, keep).eval()
    assert compact.kept_columns == int(keep.sum())
    images = torch.randn(3, 12, 11, 9)
    with torch.no_grad():
        assert max_relative_difference(compact(images), conv(images)) <= 1e-5


def test_compact_conv_with_every_column_pruned_is_its_bias() -> None:
    conv = nn.Conv2d(4, 3, 3, padding=1).eval()
    compact = CompactConv2d(conv, torch.zeros(4, 3, 3, dtype=torch.bool))
    out = compact(torch.randn(2, 4, 5, 5))
    assert out.shape == (2, 3, 5, 5)
    assert torch.equal(out, conv.bias.view(1, -1, 1, 1).expand_as(out))


def test_compact_conv_exports_to_onnx() -> None:
    require("onnxruntime")
    from secateurs.measurement.onnx_runtime import export_onnx, onnx_session

    torch.manual_seed(0)
    conv = nn.Conv2d(8, 6, 3, 2, 1)
    keep = torch.rand(8, 3, 3) > 0.6
    keep[2] = False
    model = nn.Sequential(CompactConv2d(conv, keep), nn.Flatten()).eval()
    session = onnx_session(export_onnx(model, (8, 9, 9)), threads=1)
    images = torch.randn(3, 8, 9, 9)
    (out,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = model(images).numpy()
    assert np.abs(out - expected).max() <= 1e-5 * np.abs(expected).max()


def test_compact_conv_choice_is_recorded() -> None:
    conv = nn.Conv2d(16, 16, 3, padding=1, bias=False)
    keep = torch.zeros(16, 3, 3, dtype=torch.bool)
    keep[:4] = True
    module, record = compact_conv(conv, keep, (16, 8, 8), FAST, "conv")
    assert set(record.speedups) == {1, 4} and all(r > 0 for r in record.speedups.values())
    # timed for real: whichever won, the choice follows the recorded speed-ups
    faster = math.prod(record.speedups.values()) > 1
    assert record.choice == ("compact" if faster else "dense")
    assert isinstance(module, CompactConv2d) == faster and (module is conv) == (not faster)
    assert record.kept_columns == 36 and record.columns == 144
    assert record.max_rel_diff <= 1e-5


@pytest.mark.parametrize(
    ("speedups", "choice"),
    [
        ({1: 1.5, 4: 0.9}, "compact"),  # geometric mean 1.16
        ({1: 0.7, 4: 1.35}, "dense"),  # geometric mean 0.97 (though the arithmetic is 1.025)
        ({1: 0.95, 4: 0.98}, "dense"),
    ],
)
def test_compact_conv_keeps_the_form_measured_faster(monkeypatch, speedups, choice) -> None:
    from secateurs.pruning.spp import compact as compaction

    timed = []

    def fake_compare(models, input_size, settings):
        timed.append(models)
        return {batch: [{"ratio": 1.0}, {"ratio": ratio}] for batch, ratio in speedups.items()}

    monkeypatch.setattr(compaction, "compare", fake_compare)
    conv = nn.Conv2d(16, 16, 3, padding=1, bias=False)
    keep = torch.zeros(16, 3, 3, dtype=torch.bool)
    keep[:4] = True
    module, record = compact_conv(conv, keep, (16, 8, 8), FAST, "conv")
    ((dense, compact),) = timed  # the dense form first: ratio = dense median / compact median
    assert dense is conv and isinstance(compact, CompactConv2d)
    assert record.speedups == speedups and record.choice == choice
    assert module is (compact if choice == "compact" else conv)


# -- MACs ---------------------------------------------------------------------------------------
def test_spp_macs_counts_kept_rows_and_columns() -> None:
    model = small_convnet()
    keep = torch.ones(12, 8, 3, 3, dtype=torch.bool)
    keep[:, :2] = False  # 2 of 8 input channels: pc = 0.25
    keep[:3] = False  # 3 of 12 filters: pr = 0.25
    result = spp_macs(model, {"3": keep}, SMALL_INPUT)
    layer = result["layers"]["3"]
    assert (layer["pr"], layer["pc"]) == (0.25, 0.25)
    dense = 12 * 8 * 9 * 4 * 4
    assert layer["dense_macs"] == dense
    assert layer["macs"] == pytest.approx(dense * (1 - (0.25 + 0.25 - 0.0625)))
    assert result["dense_macs"] - result["macs"] == pytest.approx(dense - layer["macs"])


def test_measured_macs_of_a_compacted_model_count_its_kept_columns() -> None:
    # count_cost (what `secateurs measure` reports) sees a compact convolution's work
    model = small_convnet().eval()
    keep = torch.ones(12, 8, 3, 3, dtype=torch.bool)
    keep[:, :2] = False  # 2 of 8 input channels
    keep[:, 5, 0] = False  # and one row of taps of another: 72 - 18 - 3 = 51 columns kept
    conv = model.get_submodule("3")
    with torch.no_grad():
        conv.weight.mul_(keep)
    compacted = copy.deepcopy(model)
    compacted[3] = CompactConv2d(conv, keep[0])
    dense = count_cost(model, SMALL_INPUT)["macs"]
    assert count_cost(compacted, SMALL_INPUT)["macs"] == dense - 12 * (72 - 51) * 4 * 4
    paper_count = spp_macs(model, {"3": keep}, SMALL_INPUT)["macs"]  # the SPP report's
    assert count_cost(compacted, SMALL_INPUT)["macs"] == round(paper_count)


def test_macs_target_is_split_into_a_uniform_ratio() -> None:
    model = create_model("resnet20", num_classes=10, in_channels=3)
    # channel counts move in steps of 1/16 of a stage's channels: the coarser grain lands lower
    for granularity, lowest in (("column", 0.499), ("channel", 0.47)):
        layers = find_layers(model, (3, 32, 32), granularity)
        ratios, predicted = ratios_for_macs(model, (3, 32, 32), layers, 0.5)
        assert len(set(ratios)) == 1 and 0 < ratios[0] < 1
        assert lowest <= predicted <= 0.5


# -- end to end ---------------------------------------------------------------------------------
@pytest.mark.parametrize("granularity", ["column", "input_channel"])
def test_callback_reaches_the_target_and_compacts_exactly(granularity: str) -> None:
    model = small_convnet()
    trainer = fake_trainer(model, lr=0.05)
    method = SPPMethod(granularity, SMALL_INPUT, 1, ratio=0.5, interval=1, A=0.25, seed=2)
    callback = method.callback()
    callback.on_train_start(trainer)
    assert [layer.name for layer in callback.state.layers] == ["3", "6"]  # "0" reads the image
    train_steps(callback, trainer, 120)
    assert callback.state.over and callback.finished_step_ is not None
    for name, ratio in callback.state.pruned_ratios().items():
        size = callback.state.layers[[x.name for x in callback.state.layers].index(name)].size
        assert ratio == math.ceil(0.5 * size) / size
    masks = callback.keep_masks()
    for name, keep in masks.items():  # the dense weights hold the fixed mask's zeros
        assert torch.all(model.get_submodule(name).weight[~keep] == 0)
    assert spp_macs(model, masks, SMALL_INPUT)["ratio"] < 1

    # force a dead input channel of layer "6" so compaction also removes a channel of "3": its
    # 9 columns (or the input channel) pruned for good in the callback's state
    dead = slice(5 * 9, 6 * 9) if granularity == "column" else slice(5, 6)
    callback.state.pruned[1][dead] = True
    masks = callback.keep_masks()
    assert not masks["6"][:, 5].any()
    with torch.no_grad():
        model[6].weight[:, 5] = 0
    model.eval()
    images = torch.randn(4, *SMALL_INPUT)
    with torch.no_grad():
        expected = model(images)
    compacted = copy.deepcopy(model)
    report = compact_model(compacted, SMALL_INPUT, masks, FAST)
    assert 5 in report.plan["removals"]["3"]
    assert compacted[3].out_channels < 12 and compacted[4].num_features < 12
    assert {r.name for r in report.layers} <= {"3", "6"}
    with torch.no_grad():
        assert max_relative_difference(compacted(images), expected) <= 1e-5

    # as `secateurs spp` does it: the callback's own model compacted in place by the method,
    # costed from the masks taken before compaction changed the layers' shapes
    compaction = method.compact(model, SMALL_INPUT, FAST)
    assert model[3].out_channels == compacted[3].out_channels < 12
    with torch.no_grad():
        assert max_relative_difference(model(images), expected) <= 1e-5
    # the cost by hand: every filter of a layer keeps the same columns (no filter is emptied),
    # so layer "3" costs 12 filters x kept columns x 4x4 outputs, and "6" 16 x kept x 4x4
    for name in ("3", "6"):
        assert torch.equal(masks[name], masks[name][:1].expand_as(masks[name]))
    kept_3, kept_6 = int(masks["3"][0].sum()), int(masks["6"][0].sum())
    assert kept_3 == 72 - 36  # half of 8 x 9 columns (or of 8 input channels of 9 columns)
    assert 108 - 54 - 9 <= kept_6 <= 108 - 54  # half of 12 x 9, and the forced channel's 9
    saved_3, saved_6 = 12 * (72 - kept_3) * 16, 16 * (108 - kept_6) * 16
    assert compaction.macs == SMALL_CONVNET_MACS - saved_3 - saved_6
    assert compaction.params == SMALL_CONVNET_PARAMS - 12 * (72 - kept_3) - 16 * (108 - kept_6)


@pytest.mark.parametrize("granularity", ["column", "input_channel"])
def test_spp_cost_counts_the_kept_columns(granularity: str) -> None:
    """The cost an SPP run reports, by hand, for a quarter of every layer pruned at once."""
    model = small_convnet().eval()
    method = SPPMethod(granularity, SMALL_INPUT, 1, ratio=0.25, oneshot=True)
    method.callback().prepare(model, SMALL_INPUT)
    compaction = method.compact(model, SMALL_INPUT, LatencySettings(repeats=0))
    # layer "3" (8 -> 12, 4x4 outputs): 72 columns, ceil(0.25 x 72) = 18 pruned, or 2 of its 8
    # input channels (18 columns); layer "6" (12 -> 16, 4x4): 27 of 108 columns, or 3 of 12
    # input channels. Saved: 12 filters x 18 columns x 16 positions, 16 x 27 x 16
    assert compaction.macs == SMALL_CONVNET_MACS - 12 * 18 * 16 - 16 * 27 * 16 == 48_132
    assert compaction.params == SMALL_CONVNET_PARAMS - 12 * 18 - 16 * 27 == 2_300


def test_channel_granularity_on_a_resnet_gives_an_engine_plan() -> None:
    model = create_model("resnet20", num_classes=4, in_channels=3)
    trainer = fake_trainer(model, lr=0.01)
    callback = SPPCallback("channel", ratio=0.25, interval=1, A=0.5, seed=0)
    callback.input_size = SMALL_INPUT
    callback.on_train_start(trainer)
    train_steps(callback, trainer, 12)
    assert callback.state.over
    plan = callback.plan()
    assert plan.removed_count > 0
    from secateurs.pruning import ChannelGraph, remove_channels

    model.eval()
    images = torch.randn(2, *SMALL_INPUT)
    with torch.no_grad():
        expected = model(images)
    remove_channels(ChannelGraph(model, SMALL_INPUT), plan)
    with torch.no_grad():
        assert max_relative_difference(model(images), expected) <= 1e-5


def test_grouped_convolution_reports_its_kept_columns_per_group() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, groups=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )
    callback = SPPCallback("column", ratio=0.5, oneshot=True)
    callback.prepare(model, (3, 8, 8))
    keep = callback.keep_masks()["2"]
    report = compact_model(model, (3, 8, 8), {"2": keep}, FAST)
    (layer,) = [layer for layer in report.layers if layer.name == "2"]
    # 2 groups x 4 input channels x 9 taps; half of each group's columns pruned
    assert (layer.columns, layer.kept_columns, layer.choice) == (72, 36, "dense-unsupported")
