"""WSP (Weak Sub-network Pruning): the weak-in-both rule on hand-made nets, the weight-norm proxies
against hand-computed norms, the conv-to-FC boundary of vgg11_bn_half, the global threshold against
a measured target, and the authors' per-layer percentile rule."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pruning_helpers import masked_and_pruned_outputs, randomise_batchnorm, relative_difference
from secateurs.errors import SecateursError
from secateurs.measurement import count_cost
from secateurs.measurement.cost import params_by_layer_type
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, PruningPlan, Target, remove_channels
from secateurs.pruning.allocation import Allocator
from secateurs.pruning.graph import IN
from secateurs.pruning.methods import ScoringData, create_method

CIFAR = (3, 32, 32)


class SmallConvNet(nn.Module):
    """conv1(3->4) -> BN -> ReLU -> conv2(4->5) -> BN -> ReLU -> mean -> fc(5->3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(5)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def batches(shape: tuple[int, ...], classes: int, count: int = 2, size: int = 16, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return ScoringData(
        [
            (
                torch.randn(size, *shape, generator=generator),
                torch.randint(0, classes, (size,), generator=generator),
            )
            for _ in range(count)
        ]
    )


def first_removed(graph: ChannelGraph, scores) -> dict[str, list[int]]:
    """The channel a global threshold removes first."""
    return Allocator(graph, scores, Allocation(normalize="none")).plan_global(1).removals


def test_dead_channel_is_selected_first() -> None:
    torch.manual_seed(0)
    model = randomise_batchnorm(SmallConvNet())
    with torch.no_grad():  # channel 2 of conv1: zero filter, BN output -0.5, so ReLU gives 0
        model.conv1.weight[2] = 0.0
        model.bn1.running_mean[2] = 0.0
        model.bn1.bias[2] = -0.5
    graph = ChannelGraph(model, (3, 6, 6))
    method = create_method("wsp")
    scores = method.score(graph, batches((3, 6, 6), 3))
    dead = method.strengths_["conv1"]
    assert dead.forward[2] == 0 and dead.backward[2] == 0  # zero gradient through its ReLU
    assert dead.forward_sparsity[2] == 1 and dead.backward_sparsity[2] == 1
    assert (dead.forward[[0, 1, 3]] > 0).all() and (dead.backward[[0, 1, 3]] > 0).all()
    assert first_removed(graph, scores) == {"conv1": [2]}


class TwoLayerNet(nn.Module):
    """fc1(8->5) -> ReLU -> fc2(5->3); hidden unit j has forward scale f_j and fc2 column scale
    b_j, and a positive bias keeps every unit on (so the gradient reaches all of them)."""

    def __init__(self, forward_scales: list[float], backward_scales: list[float]) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 5)
        self.fc2 = nn.Linear(5, 3)
        with torch.no_grad():
            self.fc1.weight.normal_(0, 0.1)
            self.fc1.bias.fill_(1.0)
            scale = torch.tensor(forward_scales)
            self.fc1.weight.mul_(scale[:, None])
            self.fc1.bias.mul_(scale)
            self.fc2.weight.normal_(0, 1.0).mul_(torch.tensor(backward_scales)[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


def test_weak_in_both_passes_goes_before_weak_in_one() -> None:
    """A: small activations, large gradients; B: large activations, small gradients; C: small in
    both; D, E: ordinary. C goes first; A and B not even before the ordinary units."""
    torch.manual_seed(0)
    a, b, c, d, e = range(5)
    model = TwoLayerNet([0.01, 10.0, 0.01, 1.0, 1.0], [100.0, 0.01, 0.01, 1.0, 1.0]).eval()
    graph = ChannelGraph(model, (8,))
    method = create_method("wsp")
    scores = method.score(graph, batches((8,), 3, size=64))
    strengths = method.strengths_["fc1"]
    forward, backward = strengths.forward, strengths.backward
    assert forward[a] < forward[d] < forward[b] and forward[c] < forward[d]
    assert backward[b] < backward[d] < backward[a] and backward[c] < backward[d]
    score = scores["fc1"]
    assert int(score.argmin()) == c
    assert score[c] < min(score[a], score[b])
    assert max(score[d], score[e]) < min(score[a], score[b])
    assert first_removed(graph, scores) == {"fc1": [c]}


def sequential_net(inplace: bool) -> nn.Sequential:
    torch.manual_seed(0)
    return randomise_batchnorm(
        nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(inplace=inplace),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.ReLU(inplace=inplace),
            nn.Flatten(),
            nn.Linear(4 * 9, 3),
        )
    )


def test_strengths_are_exact_and_unchanged_by_inplace_activations() -> None:
    """Forward: what the next conv reads (after ReLU and max-pool); backward: the gradient at the
    BN output, computed by hand with autograd; an in-place ReLU changes neither."""
    data = batches((3, 6, 6), 3, count=1)
    images, labels = data.batches[0]
    reference = sequential_net(inplace=False)
    produced = reference[1](reference[0](images))
    produced.retain_grad()
    read = reference[3](reference[2](produced))
    F.cross_entropy(reference[7](reference[6](reference[5](reference[4](read)))), labels).backward()
    for inplace in (False, True):
        model = sequential_net(inplace)
        method = create_method("wsp")
        method.score(ChannelGraph(model, (3, 6, 6)), data)
        strengths = method.strengths_["0"]
        expected_forward = read.detach().abs().mean((0, 2, 3))
        expected_backward = produced.grad.abs().mean((0, 2, 3))
        assert strengths.forward.tolist() == pytest.approx(expected_forward.tolist(), rel=1e-5)
        assert strengths.backward.tolist() == pytest.approx(expected_backward.tolist(), rel=1e-5)
        sparsity = (produced.grad == 0).double().mean((0, 2, 3))
        assert strengths.backward_sparsity.tolist() == pytest.approx(sparsity.tolist())


def test_weight_saliency_equals_hand_computed_norms() -> None:
    torch.manual_seed(0)
    model = randomise_batchnorm(SmallConvNet())
    method = create_method("wsp", saliency="weights")
    scores = method.score(ChannelGraph(model, (3, 6, 6)), ScoringData())  # no data needed
    expected = {
        "conv1": (model.conv1.weight, model.conv2.weight),
        "conv2": (model.conv2.weight, model.fc.weight),
    }
    for root, (producer, reader) in expected.items():
        producer, reader = producer.detach(), reader.detach()
        filters = [float(producer[c].abs().sum()) for c in range(producer.shape[0])]
        reads = [float(reader[:, c].abs().sum()) for c in range(producer.shape[0])]
        strengths = method.strengths_[root]
        assert strengths.forward.tolist() == pytest.approx(filters, rel=1e-6)
        assert strengths.backward.tolist() == pytest.approx(reads, rel=1e-6)
        hand = [
            max(f / np.mean(filters), r / np.mean(reads))
            for f, r in zip(filters, reads, strict=True)
        ]
        assert scores[root].tolist() == pytest.approx(hand, rel=1e-6)


def test_data_saliency_needs_labelled_data() -> None:
    graph = ChannelGraph(SmallConvNet().eval(), (3, 6, 6))
    with pytest.raises(SecateursError, match="needs data"):
        create_method("wsp").plan(graph, ScoringData(), Target(), Allocation())
    with pytest.raises(SecateursError, match="labels"):
        create_method("wsp").score(graph, ScoringData([(torch.randn(2, 3, 6, 6), None)]))
    with pytest.raises(SecateursError, match="saliency"):
        create_method("wsp", saliency="activations")


# -- vgg11_bn_half: the conv-to-FC boundary, FC pruning, the global target ------------------------
@pytest.fixture(scope="module")
def vgg() -> nn.Module:
    torch.manual_seed(0)
    return randomise_batchnorm(create_model("vgg11_bn_half", num_classes=10))


@pytest.fixture(scope="module")
def cifar_data() -> ScoringData:
    return batches(CIFAR, 10, count=2, size=8)


def test_conv_to_fc_boundary_removes_each_channels_block(vgg) -> None:
    graph = ChannelGraph(vgg, CIFAR)
    last_conv = graph.group("features.25")
    (reader,) = [m for m in last_conv.members if m.name == "classifier.0" and m.direction == IN]
    blocks: dict[int, set[int]] = {}
    for index, root in zip(reader.indices, reader.root_indices, strict=True):
        blocks.setdefault(root, set()).add(index)
    assert blocks == {c: {4 * c, 4 * c + 1, 4 * c + 2, 4 * c + 3} for c in range(256)}
    # the weight proxy reads the whole block (the authors' code sums blocks of the wrong size)
    method = create_method("wsp", saliency="weights")
    method.score(graph, ScoringData())
    block_norms = vgg.classifier[0].weight.detach().abs().view(256, 256, 4).sum((0, 2))
    assert method.strengths_["features.25"].backward.tolist() == pytest.approx(
        block_norms.tolist(), rel=1e-6
    )
    removed = [1, 5, 100, 255]
    pruned = copy.deepcopy(vgg)
    remove_channels(ChannelGraph(pruned, CIFAR), PruningPlan({"features.25": removed}))
    kept_inputs = [4 * c + k for c in range(256) if c not in removed for k in range(4)]
    assert pruned.classifier[0].in_features == 1024 - 16
    assert torch.equal(pruned.classifier[0].weight, vgg.classifier[0].weight[:, kept_inputs])


def test_wsp_prunes_the_fc_head_and_pruned_equals_masked(vgg, cifar_data) -> None:
    graph = ChannelGraph(vgg, CIFAR)
    plan = create_method("wsp").plan(graph, cifar_data, Target("macs", 0.5), Allocation()).plan
    assert {"features.25", "classifier.0", "classifier.3"} <= set(plan.removals)
    assert "classifier.6" not in plan.removals  # the output layer is protected
    images = torch.randn(4, *CIFAR)
    masked, pruned, pruned_model = masked_and_pruned_outputs(vgg, plan, CIFAR, images)
    assert relative_difference(masked, pruned) <= 1e-4
    # FC parameters by hand from the kept widths
    kept = plan.kept(graph)
    conv, hidden1, hidden2 = kept["features.25"], kept["classifier.0"], kept["classifier.3"]
    fc_params = 4 * conv * hidden1 + hidden1 + hidden1 * hidden2 + hidden2 + hidden2 * 10 + 10
    before, after = params_by_layer_type(vgg), params_by_layer_type(pruned_model)
    assert after["linear"] == fc_params < before["linear"]
    assert sum(after.values()) == count_cost(pruned_model, CIFAR)["params"]


@pytest.mark.parametrize(
    ("saliency", "kind", "ratio"), [("data", "macs", 0.4), ("weights", "params", 0.5)]
)
def test_global_threshold_meets_the_measured_target(vgg, cifar_data, saliency, kind, ratio):
    graph = ChannelGraph(vgg, CIFAR)
    method = create_method("wsp", saliency=saliency)
    result = method.plan(graph, cifar_data, Target(kind, ratio), Allocation())
    plan, achieved = result.plan, result.achieved
    pruned = copy.deepcopy(vgg)
    remove_channels(ChannelGraph(pruned, CIFAR), plan)
    measured = count_cost(pruned, CIFAR)[kind] / count_cost(vgg, CIFAR)[kind]
    assert measured == pytest.approx(achieved, rel=1e-6)
    assert abs(measured / ratio - 1) <= 0.02


# -- the authors' per-layer percentile rule -------------------------------------------------------
def reference_weak(forward: np.ndarray, backward: np.ndarray, p: float) -> set[int]:
    """The authors' rule with numpy: below the p-th percentile of both (strict <)."""
    weak = (forward < np.percentile(forward, p)) & (backward < np.percentile(backward, p))
    return set(np.flatnonzero(weak).tolist())


@pytest.mark.parametrize(("model_name", "saliency"), [("resnet20", "weights"), ("vgg", "data")])
@pytest.mark.parametrize("percentile", [30, 50])
def test_percentile_rule_removes_at_most_p_percent_per_group(
    vgg, cifar_data, model_name, saliency, percentile
) -> None:
    torch.manual_seed(0)
    model = vgg if model_name == "vgg" else randomise_batchnorm(create_model(model_name))
    graph = ChannelGraph(model, CIFAR)
    method = create_method("wsp", saliency=saliency, percentile=percentile)
    result = method.plan(graph, cifar_data, Target("macs", 0.9), Allocation())
    plan, achieved = result.plan, result.achieved
    assert plan.removed_count > 0
    for group in graph.prunable_groups:
        removed = set(plan.removals.get(group.root, []))
        assert len(removed) <= math.floor(percentile / 100 * group.size)
        strengths = method.strengths_[group.root]
        weak = reference_weak(strengths.forward.numpy(), strengths.backward.numpy(), percentile)
        assert removed <= weak
        if len(weak) <= math.floor(percentile / 100 * group.size):
            assert removed == weak
    # the target is ignored: another target gives the same plan
    again = method.plan(graph, cifar_data, Target("macs", 0.3), Allocation()).plan
    assert again.removals == plan.removals
    pruned = copy.deepcopy(model)
    remove_channels(ChannelGraph(pruned, CIFAR), plan)
    measured = count_cost(pruned, CIFAR)["macs"] / count_cost(model, CIFAR)["macs"]
    assert measured == pytest.approx(achieved, rel=1e-6)
