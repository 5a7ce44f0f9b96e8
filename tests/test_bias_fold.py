"""Folding removed channels' mean contribution into the layers that read them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from secateurs.errors import SecateursError
from secateurs.pruning.bias_fold import fold_removed_channels, removed_inputs
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.surgery import remove_channels


class ConstantChannelNet(nn.Module):
    """conv1 (no bias) -> BN -> ReLU -> conv2 (no bias, no padding) -> BN -> ReLU -> pool -> fc
    (bias), with conv1 channel 1 and conv2 channel 3 made constant (zero filters, BN shift > 0),
    so the mean-field fold is exact for them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 5, 3, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(5)
        self.fc = nn.Linear(5 * 4 * 4, 2)
        with torch.no_grad():
            for bn in (self.bn1, self.bn2):
                bn.running_mean.uniform_(-0.2, 0.2)
                bn.running_var.uniform_(0.5, 1.5)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(0.2, 0.6)
            self.conv1.weight[1] = 0
            self.conv2.weight[3] = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))


def _batches(count: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 3, 8, 8, generator=generator), torch.zeros(8)) for _ in range(count)]


def _pruned(fold: bool) -> tuple[nn.Module, nn.Module, dict]:
    torch.manual_seed(0)
    model = ConstantChannelNet().eval()
    original = ConstantChannelNet().eval()
    original.load_state_dict(model.state_dict())
    graph = ChannelGraph(model, (3, 8, 8))
    plan = PruningPlan(removals={"conv1": [1], "conv2": [3]})
    folded = fold_removed_channels(graph, plan, _batches()).to_json() if fold else {}
    remove_channels(graph, plan)
    return original, model.eval(), folded


def test_removed_inputs_maps_group_channels_to_consumer_inputs() -> None:
    model = ConstantChannelNet()
    graph = ChannelGraph(model, (3, 8, 8))
    found = removed_inputs(graph, PruningPlan(removals={"conv1": [1], "conv2": [3]}))
    # conv2 reads conv1's channel 1; fc reads conv2's channel 3 as 16 flattened features
    assert found == {"conv2": [1], "fc": list(range(48, 64))}


def test_fold_restores_constant_channels_exactly() -> None:
    original, folded, record = _pruned(fold=True)
    _, plain, _ = _pruned(fold=False)
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference, with_fold, without = original(x), folded(x), plain(x)
    assert record == {"folded": ["conv2", "fc"], "skipped": []}
    assert folded.conv2.weight.shape[1] == 3 and folded.fc.weight.shape[1] == 64
    # the removed channels were constant: folding their mean is exact, not folding is not
    assert (with_fold - reference).abs().max() < 1e-5
    assert (without - reference).abs().max() > 0.05


def test_consumer_without_bias_or_batchnorm_is_skipped() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3, bias=False))
    graph = ChannelGraph(model, (3, 8, 8))
    plan = PruningPlan(removals={"0": [0]})
    result = fold_removed_channels(graph, plan, _batches(1))
    assert result.folded == [] and result.skipped == ["2"]


def test_fold_needs_data() -> None:
    model = ConstantChannelNet()
    graph = ChannelGraph(model, (3, 8, 8))
    with pytest.raises(SecateursError, match="needs data"):
        fold_removed_channels(graph, PruningPlan(removals={"conv1": [1]}), [])
