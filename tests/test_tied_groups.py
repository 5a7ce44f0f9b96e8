"""Every method on a tied group (a residual stream): one aggregation for all of them, the
group's total over its k members divided by k (docs/decisions.md, "Issue 30: one aggregation for
tied groups"), checked against values worked out by hand or by an explicit gate."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pruning_helpers import randomise_batchnorm
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, Target
from secateurs.pruning.methods import ScoringData, create_method, list_methods
from secateurs.pruning.methods.pfp_sensitivity import layer_sensitivity

INPUT = (2, 5, 5)


class Block(nn.Module):
    """stem conv0 (2->4) + bn0 -> ReLU = h; u = bn2(conv2(ReLU(bn1(conv1(h))))); relu(h + u);
    mean; fc (4->3). conv0/bn0 and conv2/bn2 produce the same 4 channels (k = 2 members);
    conv1/bn1 alone produces the untied group."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(4)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        """``gate`` (4 values) multiplies both BatchNorm outputs of the stream: Molchanov et
        al.'s one gate shared by the tied channels, for the Taylor reference."""
        g = torch.ones(4) if gate is None else gate
        h = F.relu(self.bn0(self.conv0(x)) * g[:, None, None])
        u = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(h))))) * g[:, None, None]
        return self.fc(F.relu(h + u).mean((2, 3)))


def block() -> Block:
    """Weights with hand-countable norms: conv0 filter c is (c + 1) everywhere (18 entries: L1
    18 (c + 1)), conv2 filter c is (4 - c) everywhere (36 entries: L1 36 (4 - c)); the
    BatchNorm scales are bn0 (1, 2, 3, 4), bn2 (3, 2, 1, -4), bn1 (0.5, 1.5, 2.5, 3.5)."""
    torch.manual_seed(0)
    model = randomise_batchnorm(Block())
    with torch.no_grad():
        for c in range(4):
            model.conv0.weight[c] = c + 1.0
            model.conv2.weight[c] = 4.0 - c
        model.bn0.weight.copy_(torch.tensor([1.0, 2, 3, 4]))
        model.bn2.weight.copy_(torch.tensor([3.0, 2, 1, -4]))
        model.bn1.weight.copy_(torch.tensor([0.5, 1.5, 2.5, 3.5]))
    return model.eval()


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    images = [torch.randn(6, *INPUT, generator=generator) for _ in range(2)]
    return [(x, torch.randint(0, 3, (6,), generator=generator)) for x in images]


def scores(name: str, model: nn.Module) -> dict[str, torch.Tensor]:
    method = create_method(name, sample_size=12) if name == "pfp" else create_method(name)
    return method.score(ChannelGraph(model, INPUT), ScoringData(batches()))


def test_the_stream_is_one_group_of_two_producers() -> None:
    graph = ChannelGraph(block(), INPUT)
    stream = graph.group("conv2")
    assert sorted(m.name for m in stream.layers("out", (nn.Conv2d,))) == ["conv0", "conv2"]
    assert sorted(g.root for g in graph.prunable_groups) == ["conv1", "conv2"]


def test_filter_norms_of_a_tied_group_are_the_mean_over_producers() -> None:
    """L1: (18 (c + 1) + 36 (4 - c)) / 2 by channel:
    c=0: (18 + 144) / 2 = 81; c=1: (36 + 108) / 2 = 72; c=2: (54 + 72) / 2 = 63;
    c=3: (72 + 36) / 2 = 54. L2: sqrt((18 (c+1)^2 + 36 (4-c)^2) / 2):
    c=0: sqrt((18 + 576) / 2) = sqrt(297); c=1: sqrt((72 + 324) / 2) = sqrt(198);
    c=2: sqrt((162 + 144) / 2) = sqrt(153); c=3: sqrt((288 + 36) / 2) = sqrt(162)."""
    model = block()
    assert scores("l1", model)["conv2"].tolist() == pytest.approx([81, 72, 63, 54])
    l2 = [297**0.5, 198**0.5, 153**0.5, 162**0.5]
    assert scores("l2", model)["conv2"].tolist() == pytest.approx(l2)


def test_bn_scale_of_a_tied_group_is_the_mean_absolute_gamma() -> None:
    """(|1| + |3|) / 2, (2 + 2) / 2, (3 + 1) / 2, (4 + |-4|) / 2; the untied group is |gamma|."""
    result = scores("bn_scale", block())
    assert result["conv2"].tolist() == pytest.approx([2.0, 2.0, 2.0, 4.0])
    assert result["conv1"].tolist() == pytest.approx([0.5, 1.5, 2.5, 3.5])


def test_taylor_of_a_tied_group_is_the_shared_gate_divided_by_k() -> None:
    """Reference: one explicit gate of ones shared by bn0 and bn2, (g dL/dg)^2 averaged over
    the batches, divided by the k = 2 BatchNorms sharing it."""
    model = block()
    expected = torch.zeros(4, dtype=torch.float64)
    for images, labels in batches():
        gate = torch.ones(4, requires_grad=True)
        F.cross_entropy(model(images, gate), labels).backward()
        expected += (gate * gate.grad).detach().double().pow(2)
    result = scores("taylor", model)["conv2"]
    assert torch.allclose(result, expected / 2 / 2, rtol=1e-5, atol=1e-12)


def test_pfp_of_a_tied_group_is_the_max_over_its_consumers() -> None:
    """The stream is read by conv1 (its input h) and by fc (the pooled relu(h + u)); a
    sensitivity is a max by definition, so the group's is the larger of the two consumers'."""
    model = block()
    images = torch.cat([x for x, _ in batches()])
    with torch.no_grad():
        h = F.relu(model.bn0(model.conv0(images)))
        u = model.bn2(model.conv2(F.relu(model.bn1(model.conv1(h)))))
        pooled = F.relu(h + u).mean((2, 3))
    expected = torch.maximum(layer_sensitivity(model.conv1, h), layer_sensitivity(model.fc, pooled))
    assert scores("pfp", model)["conv2"].tolist() == pytest.approx(expected.tolist(), rel=1e-6)


@pytest.mark.parametrize("name", list_methods())
def test_every_method_scores_a_tied_group(name: str) -> None:
    """Every registered method gives the stream one finite, non-negative score per channel."""
    result = scores(name, block())
    assert result["conv2"].shape == (4,) and torch.isfinite(result["conv2"]).all()
    assert (result["conv2"] >= 0).all()


def test_bn_scale_prunes_residual_streams_at_half_the_macs() -> None:
    """With iid BatchNorm scales, a ResNet-20 stream scored by the sum over its 7 BatchNorms
    ranked above every block's channels and kept all of them; on one member's scale the three
    streams lose channels like the rest."""
    model = randomise_batchnorm(create_model("resnet20", num_classes=10))
    graph = ChannelGraph(model, (3, 32, 32))
    plan = create_method("bn_scale").plan(graph, None, Target("macs", 0.5), Allocation()).plan
    streams = [g.root for g in graph.prunable_groups if len(g.layers("out", (nn.Conv2d,))) > 2]
    assert len(streams) == 3
    assert all(plan.removals.get(root) for root in streams), plan.removals
