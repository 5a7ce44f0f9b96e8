"""Each baseline method's scores against values computed by hand on a tiny network."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from secateurs.errors import SecateursError
from secateurs.pruning import Allocation, ChannelGraph, Target
from secateurs.pruning.methods import ScoringData, create_method, list_methods

INPUT = (2, 6, 6)


class Tiny(nn.Module):
    """conv(2->4) -> BN -> ReLU -> conv(4->3) -> BN -> ReLU -> mean -> linear(3->5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 3, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


@pytest.fixture
def tiny() -> Tiny:
    torch.manual_seed(0)
    model = Tiny().eval()
    with torch.no_grad():
        model.bn1.weight.copy_(torch.tensor([0.5, -2.0, 1.0, 0.1]))
        model.bn1.bias.copy_(torch.tensor([0.1, 0.2, -0.3, 0.4]))
    return model


def test_l1_and_l2_are_filter_norms(tiny: Tiny) -> None:
    graph = ChannelGraph(tiny, INPUT)
    l1 = create_method("l1").score(graph, None)["conv1"]
    l2 = create_method("l2").score(graph, None)["conv1"]
    weight = tiny.conv1.weight.detach().double()
    assert torch.allclose(l1, weight.abs().sum((1, 2, 3)))
    assert torch.allclose(l2, weight.pow(2).sum((1, 2, 3)).sqrt())


def test_bn_scale_is_absolute_gamma(tiny: Tiny) -> None:
    scores = create_method("bn_scale").score(ChannelGraph(tiny, INPUT), None)
    assert scores["conv1"].tolist() == pytest.approx([0.5, 2.0, 1.0, 0.1])


def test_taylor_equals_squared_gate_gradient(tiny: Tiny) -> None:
    """Reference: an explicit gate of ones after bn1, (g dL/dg)^2 averaged over two batches."""
    batches = [(torch.randn(4, *INPUT), torch.randint(0, 5, (4,))) for _ in range(2)]
    scores = create_method("taylor").score(ChannelGraph(tiny, INPUT), ScoringData(batches))
    expected = torch.zeros(4, dtype=torch.float64)
    for images, labels in batches:
        gate = torch.ones(4, requires_grad=True)
        x = F.relu(tiny.bn1(tiny.conv1(images)) * gate[None, :, None, None])
        x = F.relu(tiny.bn2(tiny.conv2(x)))
        F.cross_entropy(tiny.fc(x.mean((2, 3))), labels).backward()
        expected += (gate * gate.grad).detach().double().pow(2)
    assert torch.allclose(scores["conv1"], expected / 2, rtol=1e-5, atol=1e-12)


def test_taylor_needs_data(tiny: Tiny) -> None:
    with pytest.raises(SecateursError, match="needs data"):
        create_method("taylor").plan(
            ChannelGraph(tiny, INPUT), ScoringData(), Target(), Allocation()
        )


def test_random_is_reproducible_with_a_seed(tiny: Tiny) -> None:
    graph = ChannelGraph(tiny, INPUT)
    first = create_method("random", seed=3).score(graph, None)["conv1"]
    again = create_method("random", seed=3).score(graph, None)["conv1"]
    other = create_method("random", seed=4).score(graph, None)["conv1"]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_registry_lists_baselines_and_suggests_names() -> None:
    assert {"l1", "l2", "taylor", "bn_scale", "random"} <= set(list_methods())
    with pytest.raises(SecateursError, match="did you mean 'taylor'"):
        create_method("tailor")


def test_residual_stream_scores_are_the_mean_over_producers() -> None:
    from secateurs.models import create_model

    model = create_model("resnet20")
    graph = ChannelGraph(model, (3, 32, 32))
    stream = graph.group("conv1")  # the stem and every layer1 block's conv2 share channels
    producers = sorted(m.name for m in stream.layers("out", (nn.Conv2d,)))
    assert producers == ["conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"]
    expected = sum(
        model.get_submodule(name).weight.detach().double().abs().sum((1, 2, 3))
        for name in producers
    ) / len(producers)
    assert torch.allclose(create_method("l1").score(graph, None)["conv1"], expected)
