"""SG-CNN: grouping by k-means, connections kept per group at an exact sparsity, the stages of
the three schemes, and the callback that keeps pruned connections at zero while training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from secateurs.errors import SecateursError
from secateurs.pruning.sgcnn.grouping import (
    cluster_filters,
    group_connections,
    importance_vectors,
    regroup,
)
from secateurs.pruning.sgcnn.schedule import stage_epochs, stage_sparsities


def two_families(seed: int = 0) -> torch.Tensor:
    """8 filters over 6 input channels: filters 0-3 read channels 0-2, filters 4-7 channels 3-5."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.rand(8, 6, 3, 3, generator=generator) * 0.01
    weight[:4, :3] += 1.0
    weight[4:, 3:] += 1.0
    return weight


def test_importance_vectors_sum_the_kernel() -> None:
    weight = torch.zeros(2, 3, 3, 3)
    weight[1, 2] = -1.0
    weight[0, 0, 1, 1] = 2.0
    expected = torch.tensor([[2.0, 0, 0], [0, 0, 9.0]], dtype=torch.float64)
    assert torch.equal(importance_vectors(weight), expected)


def test_kmeans_finds_the_two_families_whatever_the_filter_order() -> None:
    vectors = importance_vectors(two_families())
    labels = cluster_filters(vectors, 2, seed=0)
    assert len(set(labels[:4])) == 1 and len(set(labels[4:])) == 1 and labels[0] != labels[4]
    order = torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])
    shuffled = cluster_filters(vectors[order], 2, seed=0)
    # the same partition: filter order[k] gets the label filter order[k] had
    same = {(labels[int(i)], shuffled[k]) for k, i in enumerate(order)}
    assert len(same) == 2
    assert cluster_filters(vectors, 2, seed=0) == labels  # deterministic with a seed


def test_each_group_keeps_what_it_reads_at_the_asked_sparsity() -> None:
    vectors = importance_vectors(two_families())
    labels = cluster_filters(vectors, 2, seed=0)
    keep = group_connections(vectors, labels, 0.5)
    # 8 x 6 = 48 connections; a (group, channel) pair is 4 of them: 50% = 6 pairs exactly
    assert int((~keep).sum()) == 24
    first, second = keep[0], keep[4]
    assert first.tolist() == [True, True, True, False, False, False]
    assert second.tolist() == [False, False, False, True, True, True]
    for i in range(8):  # every filter of a group shares its group's input set
        assert torch.equal(keep[i], keep[0] if labels[i] == labels[0] else keep[4])


def test_sparsity_is_the_smallest_whole_pair_count_above_the_goal() -> None:
    torch.manual_seed(0)
    vectors = torch.rand(10, 7, dtype=torch.float64)
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]  # groups of 3, 2, 4 and 1 filters
    for sparsity in (0.1, 0.3, 0.55):
        keep = group_connections(vectors, labels, sparsity)
        pruned = int((~keep).sum())
        assert sparsity * 70 <= pruned < sparsity * 70 + 4  # over by less than the largest group
        assert bool(keep.any(1).all())  # no filter reads nothing


def test_a_group_never_loses_its_last_channel() -> None:
    vectors = torch.rand(4, 3, dtype=torch.float64)
    keep = group_connections(vectors, [0, 0, 1, 1], 0.95)
    assert keep.sum(1).tolist() == [1, 1, 1, 1]


def test_regrouping_favours_channels_the_group_still_reads() -> None:
    weight = two_families()
    first = regroup(weight, 2, 0.5, seed=0, kept=None)
    weight = weight * first.keep[:, :, None, None]
    second = regroup(weight, 2, 0.6, seed=0, kept=first.keep)
    assert not bool((second.keep & ~first.keep).any())  # nothing pruned comes back here
    assert second.sparsity >= 0.6


def test_stages_rise_by_ten_points_to_the_target() -> None:
    assert stage_sparsities(0.35) == [0.1, 0.2, 0.3, 0.35]
    assert stage_sparsities(0.3) == [0.1, 0.2, 0.3]
    with pytest.raises(SecateursError, match="sparsity"):
        stage_sparsities(0.99)


def test_scheme_epochs() -> None:
    assert stage_epochs("G", 3, 10) == [0, 0, 0]
    assert stage_epochs("L", 3, 10) == [0, 3, 6]
    assert stage_epochs("LG", 3, 10, every=2) == [0, 2, 4]
    with pytest.raises(SecateursError, match="global fine-tuning"):
        stage_epochs("LG", 3, 6, every=2)
    with pytest.raises(SecateursError, match="scheme"):
        stage_epochs("X", 3, 6)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.conv = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(torch.relu(self.stem(x))))
        return self.head(x.mean((2, 3)))


def test_callback_keeps_pruned_connections_at_zero_through_sgd() -> None:
    from secateurs.pruning.sgcnn.callback import SGCNNCallback, SGCNNSettings

    torch.manual_seed(0)
    model = Net()
    settings = SGCNNSettings(target_macs=0.6, groups=4, scheme="G", epochs=1)
    callback = SGCNNCallback(settings, (3, 8, 8))
    callback.prepare(model)
    assert list(callback.layers) == ["conv"]  # the stem reads the image: not grouped
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    trainer = type("T", (), {"optimizer": optimizer, "model": model, "epoch": 0})()
    callback.on_train_start(trainer)
    keep = callback.groups["conv"].keep
    assert callback.over and len(set(callback.groups["conv"].labels)) == 4
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        callback.after_backward(trainer)
        assert float(model.conv.weight.grad[~keep].abs().max()) == 0.0
        optimizer.step()
        callback.after_step(trainer)
    assert float(model.conv.weight.detach()[~keep].abs().max()) == 0.0
    momentum = optimizer.state[model.conv.weight]["momentum_buffer"]
    assert float(momentum[~keep].abs().max()) == 0.0
    assert float(model.conv.weight.detach()[keep].abs().min()) > 0.0


def partition(labels: list[int], names: list[int]) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for name, label in zip(names, labels, strict=True):
        groups.setdefault(label, set()).add(name)
    return {frozenset(group) for group in groups.values()}


def test_grouping_of_unstructured_filters_does_not_depend_on_their_order() -> None:
    generator = torch.Generator().manual_seed(3)
    vectors = torch.rand(24, 5, generator=generator, dtype=torch.float64)
    reference = partition(cluster_filters(vectors, 5, seed=0, inits=1), list(range(24)))
    for seed in range(6):
        order = torch.randperm(24, generator=torch.Generator().manual_seed(seed))
        labels = cluster_filters(vectors[order], 5, seed=0, inits=1)
        assert partition(labels, order.tolist()) == reference


def test_layers_the_diverse_convolution_cannot_compute_are_left_dense() -> None:
    from secateurs.pruning.sgcnn.callback import groupable_layers

    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # reads the image
        nn.Conv2d(8, 8, 3, padding="same"),
        nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"),
        nn.Conv2d(8, 8, 3, padding=1, groups=2),
        nn.Conv2d(8, 8, 3, padding=1),
    )
    assert list(groupable_layers(model, (3, 6, 6))) == ["4"]


def test_a_model_with_nothing_to_group_is_refused_naming_each_convolution() -> None:
    from secateurs.pruning.sgcnn.callback import groupable_layers

    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # reads the image
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
        nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular"),
    )
    with pytest.raises(SecateursError) as error:
        groupable_layers(model, (3, 6, 6))
    assert str(error.value) == (
        "no convolution of the model can be grouped by SG-CNN (0: reads the image; "
        "1: already grouped (groups=8); 2: padding_mode 'circular' cannot be grouped)"
    )


def test_balanced_groups_are_equal_and_read_equally_many_channels() -> None:
    from secateurs.pruning.compaction.diverse_conv import DiverseGroupConv2d
    from secateurs.pruning.sgcnn.grouping import balanced_labels

    generator = torch.Generator().manual_seed(5)
    weight = torch.rand(18, 10, 3, 3, generator=generator)
    weight[:3] *= 10  # a family k-means would keep apart, at any group size
    layer = regroup(weight, 4, 0.6, seed=0, kept=None, balanced=True)
    sizes = sorted(layer.labels.count(g) for g in set(layer.labels))
    assert sizes == [4, 4, 5, 5]  # 18 filters in 4 groups: sizes differ by at most one
    assert layer.keep.sum(1).tolist() == [4] * 18  # round(0.4 x 10) channels each
    assert layer.sparsity == pytest.approx(0.6)
    conv = nn.Conv2d(10, 18, 3, padding=1, bias=False)
    module = DiverseGroupConv2d.from_masked(conv, layer.labels, layer.keep, "grouped")
    # equal input sets; filters padded only by one zero filter in each 4-filter group
    assert module.padding_overhead() == pytest.approx(20 / 18)
    vectors = importance_vectors(weight)
    order = torch.randperm(18, generator=torch.Generator().manual_seed(1))
    again = balanced_labels(vectors[order], 4, seed=0)
    assert partition(again, order.tolist()) == partition(layer.labels, list(range(18)))
