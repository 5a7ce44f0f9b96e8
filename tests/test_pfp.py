"""PFP (Provable Filter Pruning): sensitivities against explicit loops, the unbiasedness of the
randomized reweighting, the eps solve, the certificate, reproducibility, and masked == pruned with
rescaled consumers."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pruning_helpers import (
    masked_and_pruned_outputs,
    randomise_batchnorm,
    relative_difference,
    two_convs,
)
from secateurs.measure import count_cost
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, PruningPlan, Target, remove_channels
from secateurs.pruning.methods import ScoringData, create_method
from secateurs.pruning.methods.pfp import default_sample_size, layer_sensitivity
from secateurs.pruning.prune import prune_model
from secateurs.report import certificate_table

INPUT = (2, 5, 5)
CIFAR = (3, 32, 32)


class Tiny(nn.Module):
    """conv1(2->3) -> BN -> ReLU -> conv2(3->4) -> BN -> ReLU -> mean -> fc(4->2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1, stride=2, bias=True)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def tiny_model() -> Tiny:
    torch.manual_seed(0)
    return randomise_batchnorm(Tiny())


def reference_sensitivity(weight: torch.Tensor, a: torch.Tensor, stride: int, pad: int):
    """s_j by explicit loops over images, outputs, positions, input channels and offsets."""
    if (a < 0).any():
        a = torch.cat((a.clamp_min(0), (-a).clamp_min(0)))
    a = F.pad(a, (pad, pad, pad, pad)).double()
    weight = weight.double()
    outs, channels, kh, kw = weight.shape
    height = (a.shape[2] - kh) // stride + 1
    width = (a.shape[3] - kw) // stride + 1
    eps = torch.finfo(torch.float32).eps
    s = [0.0] * channels
    for x in range(a.shape[0]):
        for i in range(outs):
            for py in range(height):
                for px in range(width):
                    patch = a[x, :, py * stride : py * stride + kh, px * stride : px * stride + kw]
                    contribution = weight[i] * patch
                    z_plus = float(contribution[weight[i] > 0].sum())
                    z_minus = float(contribution[weight[i] < 0].sum())
                    for j in range(channels):
                        for dy in range(kh):
                            for dx in range(kw):
                                w, value = float(weight[i, j, dy, dx]), float(patch[j, dy, dx])
                                if w > 0 and abs(z_plus) > eps:
                                    g = w * value / z_plus
                                elif w < 0 and abs(z_minus) > eps:
                                    g = w * value / z_minus
                                else:
                                    g = 0.0
                                s[j] = max(s[j], g)
    return torch.tensor(s)


def test_sensitivities_equal_explicit_loops() -> None:
    model = tiny_model()
    images = torch.randn(3, *INPUT)
    with torch.no_grad():
        after_bn1 = F.relu(model.bn1(model.conv1(images)))
        after_bn2 = F.relu(model.bn2(model.conv2(after_bn1))).mean((2, 3))
    graph = ChannelGraph(model, INPUT)
    scores = create_method("pfp", sample_size=3).score(graph, ScoringData([(images, None)]))
    expected = reference_sensitivity(model.conv2.weight.detach(), after_bn1, stride=2, pad=1)
    assert scores["conv1"].tolist() == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-7)
    # the linear consumer: one position, one offset
    fc_weight = model.fc.weight.detach()[:, :, None, None]
    expected_fc = reference_sensitivity(fc_weight, after_bn2[:, :, None, None], 1, 0)
    assert scores["conv2"].tolist() == pytest.approx(expected_fc.tolist(), rel=1e-5, abs=1e-7)
    assert (scores["conv1"] <= 1).all() and (scores["conv1"] > 0).any()


def test_signed_inputs_are_split_into_two_points() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
    signed = torch.randn(2, 3, 4, 4)
    expected = reference_sensitivity(conv.weight.detach(), signed, 1, 1)
    assert layer_sensitivity(conv, signed).tolist() == pytest.approx(expected.tolist(), rel=1e-5)


def test_default_sample_size_follows_the_formula() -> None:
    model = create_model("resnet20", num_classes=10)
    size = default_sample_size(model, CIFAR, 1e-16)
    assert 170 <= size <= 190  # "about 180 images for ResNet-20"
    small = default_sample_size(tiny_model(), INPUT, 1e-16)
    units = [3 * 25, 4 * 9, 2]  # conv1, conv2 (stride 2), fc output units
    expected = math.ceil(3 * math.log(8 * sum(units) * max(units) / 1e-16))
    assert small == expected


def test_randomized_reweighting_is_unbiased() -> None:
    """The mean of many randomized, reweighted layer outputs approaches the full output; the
    tolerance is 5 standard errors of the mean over the draws, per output element."""
    model = tiny_model()
    images = torch.randn(4, *INPUT)
    data = ScoringData([(images, None)])
    graph = ChannelGraph(model, INPUT)
    with torch.no_grad():
        a = F.relu(model.bn1(model.conv1(images)))
        exact = F.conv2d(a, model.conv2.weight, None, 2, 1)
    method = create_method("pfp", selection="randomized", sample_size=4)
    layers = method._layers(graph, data)
    runs = 400
    outputs = []
    for seed in range(runs):
        method.seed = seed
        plan = method._plan_for(layers, 30.0, Allocation())
        factors = torch.ones(3)
        factors[plan.removals.get("conv1", [])] = 0.0
        for index, value in plan.input_scales.get("conv2", {}).items():
            factors[index] = value
        with torch.no_grad():
            outputs.append(F.conv2d(a * factors[:, None, None], model.conv2.weight, None, 2, 1))
    stack = torch.stack(outputs)
    assert any(p.removals for p in [plan])  # something is pruned at this eps
    standard_error = stack.std(0) / math.sqrt(runs)
    assert ((stack.mean(0) - exact).abs() <= 5 * standard_error + 1e-6).all()


@pytest.fixture(scope="module")
def resnet20() -> nn.Module:
    torch.manual_seed(0)
    return randomise_batchnorm(create_model("resnet20", num_classes=10))


@pytest.fixture(scope="module")
def cifar_data() -> ScoringData:
    generator = torch.Generator().manual_seed(0)
    return ScoringData([(torch.randn(16, *CIFAR, generator=generator), None) for _ in range(2)])


@pytest.mark.parametrize(("kind", "ratio"), [("macs", 0.5), ("params", 0.6)])
def test_eps_solve_meets_the_measured_target(resnet20, cifar_data, kind, ratio) -> None:
    method = create_method("pfp", sample_size=12)
    plan, achieved = method.plan(
        ChannelGraph(resnet20, CIFAR), cifar_data, Target(kind, ratio), Allocation()
    )
    pruned = copy.deepcopy(resnet20)
    remove_channels(ChannelGraph(pruned, CIFAR), plan)
    measured = count_cost(pruned, CIFAR)[kind] / count_cost(resnet20, CIFAR)[kind]
    assert measured == pytest.approx(achieved, rel=1e-6)
    assert abs(measured / ratio - 1) <= 0.01
    assert method.eps_ > 0
    # one eps for every layer, and k_l follows from it
    assert {row["eps"] for row in method.certificate_} == {method.eps_}


def test_certificate_error_within_bound(resnet20, cifar_data) -> None:
    method = create_method("pfp", sample_size=12)
    method.plan(ChannelGraph(resnet20, CIFAR), cifar_data, Target("macs", 0.5), Allocation())
    rows = method.certificate_
    assert rows and all(row["sample_images"] == 12 and row["held_out_images"] == 20 for row in rows)
    measured = [row for row in rows if row["error_max"] is not None]
    assert any(row["kept"] < row["channels"] for row in measured)
    for row in measured:
        assert 0 <= row["error_max"] <= row["bound"]
        assert row["k"] <= row["channels"] and row["m"] >= 1 and row["S_l"] >= 0
    table = certificate_table(rows)
    assert table[0] == "## Certificate" and len(table) == len(rows) + 7


def test_tiny_certificate_within_bound() -> None:
    model = tiny_model()
    generator = torch.Generator().manual_seed(3)
    data = ScoringData([(torch.randn(12, *INPUT, generator=generator), None)])
    method = create_method("pfp", sample_size=6, selection="randomized")
    method.plan(ChannelGraph(model, INPUT), data, Target("params", 0.8), Allocation(tolerance=0.2))
    for row in method.certificate_:
        assert row["held_out_images"] == 6
        assert row["error_max"] is not None and row["error_max"] <= row["bound"]


def test_reproducible_with_a_seed(resnet20, cifar_data) -> None:
    def run(seed: int) -> dict:
        method = create_method("pfp", selection="randomized", sample_size=8, seed=seed)
        graph = ChannelGraph(resnet20, CIFAR)
        return method.plan(graph, cifar_data, Target("macs", 0.6), Allocation())[0].to_json()

    first = run(0)
    assert first == run(0)
    assert first["input_scales"]
    assert first != run(1)


def test_randomized_masked_equals_pruned(resnet20, cifar_data) -> None:
    method = create_method("pfp", selection="randomized", sample_size=8)
    graph = ChannelGraph(resnet20, CIFAR)
    plan, _ = method.plan(graph, cifar_data, Target("macs", 0.5), Allocation())
    assert plan.input_scales and plan.removed_count > 0
    images = torch.randn(4, *CIFAR)
    masked, pruned, _ = masked_and_pruned_outputs(resnet20, plan, CIFAR, images)
    assert relative_difference(masked, pruned) <= 1e-4
    # the rescaling is in the weights of the pruned model: the output is not the plain removal's
    plain = PruningPlan(plan.removals)
    _, unscaled, _ = masked_and_pruned_outputs(resnet20, plain, CIFAR, images)
    assert relative_difference(pruned, unscaled) > 1e-3


def test_plan_json_round_trip() -> None:
    plan = PruningPlan({"conv1": [0, 2]}, {"conv2": {1: 1.5, 3: 0.25}})
    assert PruningPlan.from_json(plan.to_json()) == plan
    assert PruningPlan.from_json({"conv1": [2, 0]}) == PruningPlan({"conv1": [0, 2]})


def test_iterative_schedule_records_each_step(resnet20, cifar_data) -> None:
    model = copy.deepcopy(resnet20)
    method = create_method("pfp", sample_size=8)
    outcome = prune_model(model, CIFAR, method, Target("macs", 0.5), data=cifar_data, steps=2)
    assert abs(outcome.achieved / 0.5 - 1) <= 0.02
    assert {row["step"] for row in outcome.certificate} == {1, 2}
    assert outcome.record(method, Target("macs", 0.5))["selection"] == "deterministic"


def test_engine_budget_ranks_by_sensitivity_with_the_engines_allocation(
    resnet20, cifar_data
) -> None:
    graph = ChannelGraph(resnet20, CIFAR)
    method = create_method("pfp", sample_size=12, budget="engine")
    plan, achieved = method.plan(graph, cifar_data, Target("macs", 0.5), Allocation("uniform"))
    assert method.certificate_ == [] and method.eps_ is None
    assert abs(achieved / 0.5 - 1) <= 0.01
    scores = method.score(graph, cifar_data)
    fractions = set()
    for root, removed in plan.removals.items():
        if not removed:
            continue
        kept = sorted(set(range(len(scores[root]))) - set(removed))
        # within a layer, every kept channel is at least as sensitive as every removed one
        assert scores[root][kept].min() >= scores[root][removed].max()
        fractions.add(round(len(removed) / len(scores[root]), 1))
    assert len(fractions) <= 2  # uniform: about the same fraction in every group
    with pytest.raises(Exception, match="budget is one of"):
        create_method("pfp", budget="layers")


def test_same_padding_scores_like_the_numbers_it_stands_for() -> None:
    def net(padding: int | str) -> nn.Module:
        torch.manual_seed(0)
        return two_convs(8, padding=padding).eval()

    torch.manual_seed(1)
    data = ScoringData(batches=[(torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,)))])
    scores = {}
    for padding in (1, "same"):
        model = net(padding)
        scores[padding] = create_method("pfp").score(ChannelGraph(model, (3, 8, 8)), data)
    assert scores[1].keys() == scores["same"].keys() == {"0", "3"}
    for root in scores[1]:
        assert torch.equal(scores[1][root], scores["same"][root])
        assert len(set(scores[1][root].tolist())) > 1  # real sensitivities, not the fallback 1s
