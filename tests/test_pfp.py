"""PFP (Provable Filter Pruning): sensitivities against explicit loops; p_j, alpha_l, m_l, k_l,
the draw count and the certificate against values worked out by hand on a toy layer; the sampling
distribution and the unbiasedness of the randomized reweighting; the eps solve; reproducibility;
and masked == pruned with rescaled consumers."""

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
from secateurs.measurement import count_cost
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, PruningPlan, Target, remove_channels
from secateurs.pruning.methods import ScoringData, create_method
from secateurs.pruning.methods.pfp_sensitivity import default_sample_size, layer_sensitivity
from secateurs.pruning.prune import PruneSettings, prune_model
from secateurs.report.markdown import certificate_table

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
    layers = create_method("pfp", sample_size=3)._layers(graph, ScoringData([(images, None)]))
    scores = {layer.group.root: layer.sensitivity for layer in layers}
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


# -- a toy layer whose numbers are worked out by hand -----------------------------------------
# The hidden layer (4 channels, identity weights, ReLU) is read by W = [[1, 2, 0, 1],
# [0, -1, -3, 2]], a linear layer: one position (P_l = 1), one kernel offset (kappa_l = 1).
# The sensitivity image is a = (3, 1, 1, 4); the held-out image is b = (2, 1, 1, 1).
#   unit 0: W+ = (1, 2, 0, 1), z+ = 3 + 2 + 0 + 4 = 9, shares (3/9, 2/9, 0, 4/9); no W-
#   unit 1: W+ = (0, 0, 0, 2), z+ = 8, shares (0, 0, 0, 1); |W-| = (0, 1, 3, 0), z- = 4,
#           shares (0, 1/4, 3/4, 0)
#   s = (1/3, 1/4, 3/4, 1), S_l = 7/3, p = s / S_l = (1/7, 3/28, 9/28, 3/7)
#   alpha_l = 2 * 3 * ln(8 * (1 + 1) * 1 / 1e-16) = 6 ln(1.6e17) = 237.683701...
#   m_l(eps) = ceil(3 (6 + 2 eps) S_l alpha_l / eps^2) = ceil(7 alpha_l (6 + 2 eps) / eps^2):
#     eps = 300: 11.19 -> 12;  eps = 600: 5.57 -> 6;  eps = 2000: 1.67 -> 2
#   U(m) = sum_j 1 - (1 - p_j)^m: U(2) = 1.6811, U(3) = 2.1594, U(6) = 2.9644, U(7) = 3.1216,
#     U(12) = 3.5753, so k_l = ceil(U(m_l)): 4 at eps = 300, 3 at eps = 600, 2 at eps = 2000
#   draws m' for k channels: the smallest m with U(m) >= k: 3 for k = 2 (U(2) < 2 <= U(3)),
#     7 for k = 3 (U(6) < 3 <= U(7))
TOY_S = [1 / 3, 1 / 4, 3 / 4, 1.0]
TOY_P = [1 / 7, 3 / 28, 9 / 28, 3 / 7]
TOY_ALPHA = 237.683701


def toy_layer() -> tuple[nn.Sequential, ScoringData]:
    """The toy network above and its two images (a, then the held-out b)."""
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(4))
        model[2].weight.copy_(torch.tensor([[1.0, 2, 0, 1], [0, -1, -3, 2]]))
    return model.eval(), ScoringData([(torch.tensor([[3.0, 1, 1, 4], [2, 1, 1, 1]]), None)])


def test_sampling_quantities_equal_the_hand_computed_ones() -> None:
    model, data = toy_layer()
    (layer,) = create_method("pfp", sample_size=1)._layers(ChannelGraph(model, (4,)), data)
    assert layer.group.root == "0" and (layer.positions, layer.kappa) == (1, 1)
    assert layer.sensitivity.tolist() == pytest.approx(TOY_S, rel=1e-6)
    assert layer.total == pytest.approx(7 / 3, rel=1e-6)
    assert layer.probability.tolist() == pytest.approx(TOY_P, rel=1e-6)
    assert layer.alpha == pytest.approx(TOY_ALPHA, rel=1e-8)
    assert [layer.sample_size(eps) for eps in (300.0, 600.0, 2000.0)] == [12, 6, 2]
    assert [layer.kept(eps) for eps in (300.0, 600.0, 2000.0)] == [4, 3, 2]
    assert [layer.draws_for(k) for k in (2, 3)] == [3, 7]


def test_randomized_draws_follow_p_in_every_seed() -> None:
    """At eps = 600 (k_l = 3, m' = 7) every seed's plan is one multinomial draw of 7 with
    p = s / S_l: the count behind each kept channel's factor (factor * m' * p_j) is a whole number
    and the counts add up to 7; over the seeds each channel's mean count is m' p_j and it is kept
    with probability 1 - (1 - p_j)^7 (both within 5 standard errors)."""
    model, data = toy_layer()
    method = create_method("pfp", selection="randomized", sample_size=1)
    layers = method._layers(ChannelGraph(model, (4,)), data)
    runs, draws = 400, 7
    counts = torch.zeros(runs, 4, dtype=torch.float64)
    for seed in range(runs):
        method.seed = seed
        plan = method._plan_for(layers, 600.0, Allocation())
        scales = plan.input_scales.get("2", {})
        for j in sorted(set(range(4)) - set(plan.removals.get("0", []))):
            counts[seed, j] = scales.get(j, 1.0) * draws * TOY_P[j]
        whole = counts[seed].round()
        assert torch.allclose(counts[seed], whole, atol=1e-9), (seed, counts[seed].tolist())
        assert whole.sum() == draws and (whole[list(scales)] >= 1).all(), seed
    p = torch.tensor(TOY_P, dtype=torch.float64)
    mean_error = (counts.mean(0) - draws * p).abs()
    assert (mean_error <= 5 * (draws * p * (1 - p) / runs).sqrt()).all(), counts.mean(0)
    inclusion = 1 - (1 - p) ** draws
    kept_error = ((counts > 0).double().mean(0) - inclusion).abs()
    assert (kept_error <= 5 * (inclusion * (1 - inclusion) / runs).sqrt()).all()


def test_randomized_reweighting_is_unbiased() -> None:
    """The mean of many randomized, reweighted layer outputs approaches the full output; the
    tolerance is 5 standard errors of the mean over the draws, per output element. At eps = 3000
    conv1 keeps k = 2 of its 3 channels from m' = 3 draws: every seed rescales its channels, and
    most seeds remove one."""
    model = tiny_model()
    images = torch.randn(4, *INPUT)
    data = ScoringData([(images, None)])
    graph = ChannelGraph(model, INPUT)
    with torch.no_grad():
        a = F.relu(model.bn1(model.conv1(images)))
        exact = F.conv2d(a, model.conv2.weight, None, 2, 1)
    method = create_method("pfp", selection="randomized", sample_size=4)
    layers = method._layers(graph, data)
    assert layers[0].group.root == "conv1" and layers[0].kept(3000.0) == 2
    runs, removing = 400, 0
    outputs = []
    for seed in range(runs):
        method.seed = seed
        plan = method._plan_for(layers, 3000.0, Allocation())
        factors = torch.ones(3)
        factors[plan.removals.get("conv1", [])] = 0.0
        assert plan.input_scales.get("conv2"), seed  # every seed drew and reweighted conv1
        for index, value in plan.input_scales["conv2"].items():
            factors[index] = value
        removing += bool(plan.removals.get("conv1"))
        with torch.no_grad():
            outputs.append(F.conv2d(a * factors[:, None, None], model.conv2.weight, None, 2, 1))
    assert removing >= runs // 2
    stack = torch.stack(outputs)
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


def layer_sizes(model: nn.Module, input_size: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """(output positions per image, kernel offsets) of every conv and linear layer, by name."""
    sizes = {name: (1, 1) for name, m in model.named_modules() if isinstance(m, nn.Linear)}

    def hook(name: str):
        def record(module: nn.Conv2d, inputs, output: torch.Tensor) -> None:
            sizes[name] = (output.shape[-2] * output.shape[-1], math.prod(module.kernel_size))

        return record

    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    handles = [module.register_forward_hook(hook(name)) for name, module in convs]
    with torch.no_grad():
        model(torch.zeros(1, *input_size))
    for handle in handles:
        handle.remove()
    return sizes


@pytest.mark.parametrize(("kind", "ratio"), [("macs", 0.5), ("params", 0.6)])
def test_eps_solve_meets_the_measured_target(resnet20, cifar_data, kind, ratio) -> None:
    """The plan meets the target by real surgery, and every group keeps the k_l that the paper's
    formulas give for the one eps, worked out here from the sensitivities and layer sizes."""
    method = create_method("pfp", sample_size=12)
    graph = ChannelGraph(resnet20, CIFAR)
    result = method.plan(graph, cifar_data, Target(kind, ratio), Allocation())
    pruned = copy.deepcopy(resnet20)
    remove_channels(ChannelGraph(pruned, CIFAR), result.plan)
    measured = count_cost(pruned, CIFAR)[kind] / count_cost(resnet20, CIFAR)[kind]
    assert measured == pytest.approx(result.achieved, rel=1e-6)
    assert abs(measured / ratio - 1) <= 0.01
    (eps,) = {row["eps"] for row in result.certificate}  # one eps for every layer
    assert eps == method.eps_ and eps > 0
    # s_j, checked against explicit loops above
    scores = {layer.group.root: layer.sensitivity for layer in method._layers(graph, cifar_data)}
    sizes = layer_sizes(resnet20, CIFAR)
    assert [row["group"] for row in result.certificate] == list(scores)
    for row in result.certificate:
        s = scores[row["group"]]
        positions = max(sizes[name][0] for name in row["consumers"])
        kappa = max(sizes[name][1] for name in row["consumers"])
        alpha = 2 * 3 * math.log(8 * (positions + 1) * kappa / 1e-16)
        m = math.ceil(3 * (6 + 2 * eps) * float(s.sum()) * alpha / eps**2)
        unique = float((1 - (1 - s / s.sum()) ** m).sum())
        k = min(max(math.ceil(unique - 1e-9), 1), len(s))
        assert (row["S_l"], row["m"], row["k"]) == (pytest.approx(float(s.sum())), m, k), row
        removed = result.plan.removals.get(row["group"], [])
        assert row["kept"] == k == len(s) - len(removed)
        if removed:  # deterministic: the top-k_l by sensitivity stay
            kept = sorted(set(range(len(s))) - set(removed))
            assert s[kept].min() >= s[removed].max()
    assert any(row["k"] < row["channels"] for row in result.certificate)


def test_certificate_rows_on_resnet(resnet20, cifar_data) -> None:
    """One row per prunable group, the first 12 images for S and the other 20 held out; a group
    that keeps every channel has measured error 0, one that loses some a positive error."""
    method = create_method("pfp", sample_size=12)
    graph = ChannelGraph(resnet20, CIFAR)
    rows = method.plan(graph, cifar_data, Target("macs", 0.5), Allocation()).certificate
    assert [row["group"] for row in rows] == [g.root for g in graph.prunable_groups]
    assert all(row["sample_images"] == 12 and row["held_out_images"] == 20 for row in rows)
    # deterministic selection: no bound claimed; the solved eps here is far above 1 (vacuous)
    assert all(row["bound"] is None and row["delta"] == 1e-16 for row in rows)
    assert all(row["vacuous"] == (row["eps"] >= 1) for row in rows)
    for row in rows:
        changed = row["kept"] < row["channels"]
        assert (row["error_max"] > 0) == changed and (row["error_l2"] > 0) == changed, row
    assert any(row["kept"] < row["channels"] for row in rows)
    table = certificate_table(rows)
    assert table[0] == "## Certificate" and len(table) == len(rows) + 7


def test_toy_certificate_equals_the_hand_computed_errors() -> None:
    """On the toy layer, 75% of the parameters (24 -> 18) means k_l = 3: channel 1 (s = 1/4)
    goes. On the held-out b = (2, 1, 1, 1) the first unit loses W_01 b_1 = 2 of |W_0| b = 5 and
    the second |W_11| b_1 = 1 of |W_1| b = 6 (not of |W_1 b| = 2), so the max error is 2/5;
    z = W b = (5, -2) and z_hat - z = (-2, 1), so the L2 error is sqrt(5 / 29). m_l follows from
    the eps chosen, and that eps is one where U(m_l) lies in (2, 3], i.e. k_l = 3."""
    model, data = toy_layer()
    method = create_method("pfp", sample_size=1)
    result = method.plan(ChannelGraph(model, (4,)), data, Target("params", 0.75), Allocation())
    assert result.plan == PruningPlan({"0": [1]}) and result.achieved == pytest.approx(0.75)
    (row,) = result.certificate
    eps = row["eps"]
    m = math.ceil(3 * (6 + 2 * eps) * (7 / 3) * TOY_ALPHA / eps**2)
    unique = sum(1 - (1 - p) ** m for p in TOY_P)
    assert 2 < unique <= 3
    # the solve lands on the smallest eps with k_l = 3, i.e. m_l <= 6 (U(6) = 2.96, U(7) = 3.12):
    # 7 alpha (6 + 2 eps) / eps^2 = 6, 6 eps^2 - 14 alpha eps - 42 alpha = 0,
    # eps = (14 alpha + sqrt(196 alpha^2 + 1008 alpha)) / 12 = 557.579248 (alpha = 237.683701)
    assert eps == pytest.approx(557.579248, rel=1e-6) and m == 6
    expected = {"group": "0", "consumers": ["2"], "channels": 4, "kept": 3, "k": 3, "m": m}
    expected |= {"sample_images": 1, "held_out_images": 1, "bound": None, "delta": 1e-16}
    assert {key: row[key] for key in expected} == expected
    assert row["S_l"] == pytest.approx(7 / 3)
    assert row["error_max"] == pytest.approx(2 / 5, rel=1e-6)
    assert row["error_l2"] == pytest.approx(math.sqrt(5 / 29), rel=1e-6)


def test_toy_certificate_of_a_randomized_plan() -> None:
    """The randomized plan's error on b, worked out from its factors f_j (0 for removed channels):
    per unit |sum_j W_ij (f_j - 1) b_j| / sum_j |W_ij| b_j, and the L2 error of z_hat - z."""
    model, data = toy_layer()
    method = create_method("pfp", sample_size=1, selection="randomized", seed=2)
    result = method.plan(ChannelGraph(model, (4,)), data, Target("params", 0.75), Allocation())
    factors = [0.0 if j in result.plan.removals.get("0", []) else 1.0 for j in range(4)]
    for j, value in result.plan.input_scales["2"].items():
        factors[j] = value
    assert result.selection == "randomized" and factors != [1.0, 0.0, 1.0, 1.0]
    weight = torch.tensor([[1.0, 2, 0, 1], [0, -1, -3, 2]])
    b = torch.tensor([2.0, 1, 1, 1])
    diff = weight @ ((torch.tensor(factors) - 1) * b)
    scale = weight.abs() @ b
    (row,) = result.certificate
    assert row["error_max"] == pytest.approx(float((diff.abs() / scale).max()), rel=1e-6)
    l2 = float(diff.norm() / (weight @ b).norm())
    assert row["error_l2"] == pytest.approx(l2, rel=1e-6)
    assert row["bound"] == row["eps"]  # the randomized selection is what the theorem bounds


def test_reproducible_with_a_seed(resnet20, cifar_data) -> None:
    def run(seed: int) -> dict:
        method = create_method("pfp", selection="randomized", sample_size=8, seed=seed)
        graph = ChannelGraph(resnet20, CIFAR)
        return method.plan(graph, cifar_data, Target("macs", 0.6), Allocation()).plan.to_json()

    first = run(0)
    assert first == run(0)
    assert first["input_scales"]
    assert first != run(1)


def test_randomized_masked_equals_pruned(resnet20, cifar_data) -> None:
    method = create_method("pfp", selection="randomized", sample_size=8)
    graph = ChannelGraph(resnet20, CIFAR)
    result = method.plan(graph, cifar_data, Target("macs", 0.5), Allocation())
    plan = result.plan
    assert result.selection == "randomized"
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
    settings = PruneSettings(Target("macs", 0.5), steps=2)
    outcome = prune_model(model, CIFAR, method, settings, data=cifar_data)
    assert abs(outcome.achieved / 0.5 - 1) <= 0.02
    assert {row["step"] for row in outcome.certificate} == {1, 2}
    assert outcome.record(method, Target("macs", 0.5)).oneshot.selection == "deterministic"


def test_engine_budget_ranks_by_sensitivity_with_the_engines_allocation(
    resnet20, cifar_data
) -> None:
    graph = ChannelGraph(resnet20, CIFAR)
    method = create_method("pfp", sample_size=12, budget="engine")
    result = method.plan(graph, cifar_data, Target("macs", 0.5), Allocation("uniform"))
    plan, achieved = result.plan, result.achieved
    assert result.certificate == [] and method.eps_ is None
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


def test_a_certificate_whose_error_exceeds_its_bound_is_reported_violated() -> None:
    from secateurs.report.certificate import violations

    row = {"group": "g", "channels": 4, "kept": 3, "eps": 0.1, "delta": 1e-16, "m": 10, "k": 3}
    row |= {"S_l": 1.0, "sample_images": 1, "held_out_images": 1, "vacuous": False}
    held = {**row, "group": "ok", "error_max": 0.05, "error_l2": 0.01, "bound": 0.1}
    broken = {**row, "group": "bad", "error_max": 0.3, "error_l2": 0.2, "bound": 0.1}
    unbounded = {**row, "group": "det", "error_max": 0.9, "error_l2": 0.5, "bound": None}
    assert violations([held, broken, unbounded]) == ["bad"]
    assert "VIOLATED in group(s) bad" in "\n".join(certificate_table([held, broken]))
    assert "Every measured error is within its bound" in "\n".join(certificate_table([held]))
    assert "no bound" in "\n".join(certificate_table([unbounded]))


# -- saturated sensitivities ------------------------------------------------------------------
# A hidden layer of 4 channels (identity weights, ReLU) read by one linear unit W = (1, 1, 1, 1);
# no W-, so each point also has a negative part with z- = 0 (shares 0). Four points:
#   x1 = (1, 0, 0, 0): shares (1, 0, 0, 0)     x2 = (0, 1, 0, 0): shares (0, 1, 0, 0)
#   x3 = (1, 2, 1, 0): z+ = 4, (1/4, 1/2, 1/4, 0)   x4 = (0, 0, 1, 2): z+ = 3, (0, 0, 1/3, 2/3)
#   s = (1, 1, 1/3, 2/3): channels 0 and 1 are both saturated; S_l = 3, p = (1/3, 1/3, 1/9, 2/9).
#   t = sums over the 4 points x 2 parts / 8 = (5/4, 3/2, 7/12, 2/3) / 8
#     = (0.15625, 0.1875, 0.0729167, 0.0833333): channel 1 takes more of the unit on average.
SATURATED_T = [5 / 32, 3 / 16, 7 / 96, 1 / 12]


def saturated_layer() -> tuple[nn.Sequential, ScoringData]:
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(4))
        model[2].weight.fill_(1.0)
    points = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [1, 2, 1, 0], [0, 0, 1, 2]])
    return model.eval(), ScoringData([(points[:2], None), (points[2:], None)])


def test_saturated_channels_are_ordered_by_their_mean_share() -> None:
    """The paper's s_j ties channels 0 and 1 at 1; t_j (accumulated over two batches) orders
    them: keeping one channel keeps channel 1, where a stable sort of s alone kept channel 0."""
    model, data = saturated_layer()
    method = create_method("pfp", sample_size=4)
    (layer,) = method._layers(ChannelGraph(model, (4,)), data)
    assert layer.sensitivity.tolist() == pytest.approx([1, 1, 1 / 3, 2 / 3], rel=1e-6)
    assert layer.mean_share.tolist() == pytest.approx(SATURATED_T, rel=1e-6)
    assert layer.probability.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 9, 2 / 9], rel=1e-6)
    assert layer.kept(1e12) == 1
    assert method._plan_for([layer], 1e12, Allocation()) == PruningPlan({"0": [0, 2, 3]})
    assert method._plan_for([layer], 600.0, Allocation()).removals.get("0", []) != [1]
    ranking = method.score(ChannelGraph(model, (4,)), data)["0"]
    assert torch.argsort(ranking, descending=True).tolist() == [1, 0, 3, 2]
