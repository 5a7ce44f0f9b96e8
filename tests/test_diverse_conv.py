"""SG-CNN's diverse group convolution: equal to the masked dense convolution in both execution
forms, outputs in the original filter order, counted MACs, ONNX export, reload from JSON +
safetensors, refusals, and training (one SGD step equals the masked convolution's)."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from ci_guard import require
from pruning_helpers import relative_difference
from secateurs.errors import SecateursError
from secateurs.measurement import count_cost
from secateurs.models import create_model
from secateurs.pruning import ChannelGraph
from secateurs.pruning.compaction.diverse_conv import (
    DiverseGroupConv2d,
    DiverseSpec,
    diverse_convs_record,
    replace_diverse_convs,
)
from secateurs.store import MANIFEST_FILE, WEIGHTS_FILE, Manifest, load_model, save_model

FORMS = ("grouped", "per_group")


def random_grouping(
    out_channels: int, in_channels: int, groups: int, seed: int
) -> tuple[list[int], torch.Tensor]:
    """Labels that interleave ``groups`` groups of unequal sizes, and a keep matrix whose groups
    read sets of unequal sizes that overlap; the last group reads exactly one channel."""
    generator = torch.Generator().manual_seed(seed)
    sizes = [1 + g for g in range(groups)]  # unequal: 1, 2, 3, ...
    sizes[-1] += out_channels - sum(sizes)
    labels = [g for g, size in enumerate(sizes) for _ in range(size)]
    labels = [labels[i] for i in torch.randperm(out_channels, generator=generator).tolist()]
    rows = []
    for g in range(groups):
        count = 1 if g == groups - 1 else 2 + (g * 3) % (in_channels - 2)
        rows.append(torch.randperm(in_channels, generator=generator)[:count])
    keep = torch.zeros(out_channels, in_channels, dtype=torch.bool)
    for i, label in enumerate(labels):
        keep[i, rows[label]] = True
    return labels, keep


def masked_conv(conv: nn.Conv2d, keep: torch.Tensor) -> nn.Conv2d:
    masked = copy.deepcopy(conv)
    with torch.no_grad():
        masked.weight.mul_(keep.view(*keep.shape, 1, 1))
    return masked


def test_the_random_grouping_has_the_properties_the_tests_claim() -> None:
    labels, keep = random_grouping(12, 8, 4, seed=0)
    sizes = sorted(labels.count(g) for g in range(4))
    assert len(set(sizes)) == 4  # unequal group sizes
    assert labels != sorted(labels)  # interleaved
    reads = [keep[labels.index(g)] for g in range(4)]
    assert len({int(r.sum()) for r in reads}) > 1 and int(reads[3].sum()) == 1
    assert any(bool((reads[a] & reads[b]).any()) for a in range(4) for b in range(a))  # overlap


# (kernel, stride, padding, bias)
GEOMETRIES = [(1, 1, 0, True), (3, 1, 1, False), (3, 2, 1, True), (3, 2, 0, False), (3, 1, 2, True)]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_masked_convolution(form: str, geometry: tuple, seed: int) -> None:
    kernel, stride, padding, bias = geometry
    torch.manual_seed(seed)
    conv = nn.Conv2d(10, 12, kernel, stride, padding, bias=bias)
    labels, keep = random_grouping(12, 10, 4, seed)
    module = DiverseGroupConv2d.from_masked(conv, labels, keep, form)
    assert module.form == form
    images = torch.randn(3, 10, 11, 11)
    with torch.no_grad():
        expected = masked_conv(conv, keep)(images)
        assert relative_difference(expected, module(images)) <= 1e-5
    # with autograd on too (the grouped kernel is padded at each call, not kept)
    assert relative_difference(expected, module(images).detach()) <= 1e-5


def test_a_group_reading_no_channel_outputs_its_bias() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 4, 3, padding=1)
    keep = torch.zeros(4, 6, dtype=torch.bool)
    keep[:2, 1:4] = True  # group 0 reads 3 channels, group 1 reads none
    images = torch.randn(2, 6, 5, 5)
    for form in FORMS:
        module = DiverseGroupConv2d.from_masked(conv, [0, 0, 1, 1], keep, form)
        with torch.no_grad():
            out = module(images)
            assert relative_difference(masked_conv(conv, keep)(images), out) <= 1e-5
        assert torch.equal(out[:, 2:], conv.bias[2:].view(1, 2, 1, 1).expand(2, 2, 5, 5))


@pytest.mark.parametrize("form", FORMS)
def test_outputs_come_back_in_the_original_filter_order(form: str) -> None:
    # filter i outputs the constant i (zero kernel, bias i); groups interleave: 0 1 2 0 1 2 ...
    conv = nn.Conv2d(5, 9, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.arange(9.0))
    labels = [i % 3 for i in range(9)]
    keep = torch.zeros(9, 5, dtype=torch.bool)
    for i, label in enumerate(labels):
        keep[i, label : label + 2] = True
    module = DiverseGroupConv2d.from_masked(conv, labels, keep, form)
    with torch.no_grad():
        out = module(torch.randn(2, 5, 4, 4))
    assert out[0, :, 0, 0].tolist() == list(range(9))


def small_grouping() -> tuple[nn.Conv2d, list[int], torch.Tensor]:
    """8 -> 6 channels, 3x3, stride 2, padding 1: groups {0, 2, 5} reading channels 0-2,
    {1, 4} reading 2-6 and {3} reading 7."""
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 6, 3, stride=2, padding=1)
    labels = [0, 1, 0, 2, 1, 0]
    reads = {0: [0, 1, 2], 1: [2, 3, 4, 5, 6], 2: [7]}
    keep = torch.zeros(6, 8, dtype=torch.bool)
    for i, label in enumerate(labels):
        keep[i, reads[label]] = True
    return conv, labels, keep


def test_counted_macs_and_parameters_are_what_each_form_computes() -> None:
    conv, labels, keep = small_grouping()
    positions = 5 * 5  # a 9x9 input, stride 2, padding 1: 5x5 outputs
    # Torch-Pruning counts a convolution's bias adds: C_out x (C_in x 3 x 3 + 1) per position
    assert count_cost(nn.Sequential(conv), (8, 9, 9))["macs"] == 6 * (8 * 9 + 1) * positions
    per_group = (3 * (3 * 9 + 1) + 2 * (5 * 9 + 1) + 1 * (1 * 9 + 1)) * positions  # 4650
    grouped = 3 * 3 * (5 * 9 + 1) * positions  # 3 groups padded to 3 filters x 5 inputs: 10350
    for form, macs in (("per_group", per_group), ("grouped", grouped)):
        module = DiverseGroupConv2d.from_masked(conv, labels, keep, form)
        cost = count_cost(nn.Sequential(module), (8, 9, 9))
        assert cost == {"macs": macs, "params": (3 * 3 + 2 * 5 + 1 * 1) * 9 + 6}
    assert (per_group, grouped) == (4650, 10350)


def test_one_group_reading_everything_counts_as_the_dense_convolution() -> None:
    # the same counting convention as Torch-Pruning's for nn.Conv2d, in a model with other layers
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2))
    diverse = copy.deepcopy(model)
    diverse[2] = DiverseGroupConv2d.from_masked(model[2], [0] * 6, torch.ones(6, 8, dtype=bool))
    assert count_cost(diverse, (3, 12, 12)) == count_cost(model, (3, 12, 12))


def test_auto_takes_the_grouped_form_unless_padding_costs_over_a_quarter_more() -> None:
    conv, labels, keep = small_grouping()
    module = DiverseGroupConv2d.from_masked(conv, labels, keep)  # padding: 414 / 186 of the work
    assert module.form == "per_group" and module.padding_overhead() == pytest.approx(414 / 186)
    equal = torch.zeros(6, 8, dtype=torch.bool)
    equal[[0, 2, 4], :4] = True
    equal[[1, 3, 5], 3:7] = True  # equal groups, overlapping sets: no padding
    module = DiverseGroupConv2d.from_masked(conv, [0, 1, 0, 1, 0, 1], equal)
    assert module.form == "grouped" and module.padding_overhead() == 1.0
    equal[[1, 3, 5], 7] = True  # one group's set one channel larger (4 -> 5)
    one_more = DiverseGroupConv2d.from_masked(conv, [0, 1, 0, 1, 0, 1], equal)
    # grouped: 2 x 3 x (5 x 9 + 1) = 276, per group: 3 x 37 + 3 x 46 = 249; 276 <= 1.25 x 249
    assert one_more.form == "grouped"
    assert one_more.forms_possible() == ["grouped", "per_group"]
    assert one_more.set_form("per_group").form == "per_group"


@pytest.mark.parametrize("form", FORMS)
def test_exports_to_onnx_with_the_same_outputs(form: str) -> None:
    require("onnxruntime")
    from secateurs.measurement.onnx_runtime import export_onnx, onnx_session

    torch.manual_seed(0)
    labels, keep = random_grouping(12, 10, 4, seed=3)
    conv = nn.Conv2d(10, 12, 3, padding=1, stride=2)
    model = nn.Sequential(
        nn.Conv2d(3, 10, 3, padding=1),
        nn.ReLU(),
        DiverseGroupConv2d.from_masked(conv, labels, keep, form),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ).eval()
    session = onnx_session(export_onnx(model, (3, 8, 8)), threads=1)
    images = torch.randn(3, 3, 8, 8)  # another batch than the exported one: dynamic batch
    (out,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        assert relative_difference(model(images), torch.from_numpy(out)) <= 1e-4


def test_saves_and_reloads_from_json_and_safetensors_without_pickle(tmp_path: Path, monkeypatch):
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=3).eval()
    for name, form, seed in (("layer1.0.conv1", "grouped", 0), ("layer2.0.conv1", "per_group", 1)):
        conv = model.get_submodule(name)
        labels, keep = random_grouping(conv.out_channels, conv.in_channels, 4, seed)
        parent, _, child = name.rpartition(".")
        module = DiverseGroupConv2d.from_masked(conv, labels, keep, form)
        setattr(model.get_submodule(parent), child, module)
    record = diverse_convs_record(model)
    manifest = Manifest(
        "resnet20",
        {"num_classes": 10, "in_channels": 3},
        [str(i) for i in range(10)],
        [3, 32, 32],
        [0.5] * 3,
        [0.25] * 3,
        pruning={"rounds": [], "diverse_groups": record},
    )
    save_model(model, tmp_path, manifest)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([WEIGHTS_FILE, MANIFEST_FILE])
    saved = json.loads((tmp_path / MANIFEST_FILE).read_text())["pruning"]["diverse_groups"][
        "layers"
    ]
    assert saved == record  # plain JSON

    def refuse(*args, **kwargs):
        raise AssertionError("loading unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    reloaded, _ = load_model(tmp_path)
    layers = {n: m.form for n, m in reloaded.named_modules() if isinstance(m, DiverseGroupConv2d)}
    assert layers == {"layer1.0.conv1": "grouped", "layer2.0.conv1": "per_group"}
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(images), reloaded(images))


def test_a_record_that_does_not_fit_the_model_is_refused() -> None:
    model = create_model("resnet20", num_classes=10, in_channels=3)
    conv, labels, keep = small_grouping()
    record = DiverseGroupConv2d.from_masked(conv, labels, keep).record()
    with pytest.raises(SecateursError, match=r"'layer1\.0\.conv1' does not fit"):
        replace_diverse_convs(model, {"layer1.0.conv1": record})
    with pytest.raises(SecateursError, match=r"'layer9' is not in the model"):
        replace_diverse_convs(model, {"layer9": record})
    with pytest.raises(SecateursError, match=r"'fc'.* not a convolution"):
        replace_diverse_convs(model, {"fc": record})
    with pytest.raises(SecateursError, match=r"'layer1\.0\.conv1': invalid"):
        replace_diverse_convs(model, {"layer1.0.conv1": {**record, "form": "fastest"}})


def test_the_spec_round_trips_through_json_and_checks_its_groups() -> None:
    conv, labels, keep = small_grouping()
    spec = DiverseGroupConv2d.from_masked(conv, labels, keep).spec
    assert DiverseSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    groups = [([0, 2, 5], [0, 1, 2]), ([1, 4], [2, 3])]  # filter 3 in no group
    with pytest.raises(ValueError, match="each of the 6 outputs once"):
        DiverseSpec(8, 6, 3, 1, 1, 1, True, groups)
    with pytest.raises(ValueError, match="repeat or exceed 8"):
        DiverseSpec(8, 6, 3, 1, 1, 1, True, [([0, 1, 2], [0, 0]), ([3, 4, 5], [1])])
    with pytest.raises(ValueError, match="not a diverse group convolution spec"):
        DiverseSpec.from_json({"groups": []})


def test_from_masked_refuses_a_group_whose_filters_read_different_channels() -> None:
    conv, labels, keep = small_grouping()
    keep[5, 7] = True  # filter 5 (group 0) reads one more channel than filters 0 and 2
    with pytest.raises(ValueError, match="group 0 do not read the same channels"):
        DiverseGroupConv2d.from_masked(conv, labels, keep)
    with pytest.raises(ValueError, match="do not fit"):
        DiverseGroupConv2d.from_masked(conv, labels[:5], keep[:5])


@pytest.mark.parametrize("form", FORMS)
def test_one_sgd_step_equals_the_masked_convolutions_on_the_kept_weights(form: str) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(10, 12, 3, padding=1)
    labels, keep = random_grouping(12, 10, 4, seed=4)
    masked = masked_conv(conv, keep)
    module = DiverseGroupConv2d.from_masked(masked, labels, keep, form)
    images, target = torch.randn(4, 10, 6, 6), torch.randn(4, 12, 6, 6)
    for layer in (masked, module):
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        ((layer(images) - target) ** 2).mean().backward()
        optimizer.step()
    stepped = module.masked_conv()
    kept = keep.view(12, 10, 1, 1).expand_as(masked.weight)
    assert not torch.allclose(stepped.weight[kept], conv.weight[kept])  # the step moved them
    assert torch.allclose(stepped.weight[kept], masked.weight[kept], rtol=1e-5, atol=1e-7)
    assert torch.allclose(stepped.bias, masked.bias, rtol=1e-5, atol=1e-7)
    assert not stepped.weight[~kept].any()  # connections not kept stay absent


def test_the_kernel_kept_for_inference_follows_parameter_changes() -> None:
    conv, labels, keep = small_grouping()
    module = DiverseGroupConv2d.from_masked(conv, labels, keep, "grouped").eval()
    images = torch.randn(2, 8, 9, 9)
    with torch.inference_mode():
        module(images)  # keeps the padded kernel
    copied = copy.deepcopy(module)
    with torch.no_grad():
        module.weights[1].mul_(2.0)
        copied.weights[0].add_(1.0)
        for layer in (module, copied):
            assert relative_difference(layer.masked_conv()(images), layer(images)) <= 1e-5


def test_the_engine_refuses_to_prune_a_model_with_a_diverse_group_convolution() -> None:
    model = create_model("resnet20", num_classes=4, in_channels=3)
    conv = model.layer1[0].conv2
    model.layer1[0].conv2 = DiverseGroupConv2d.from_masked(
        conv, [i % 2 for i in range(16)], torch.ones(16, 16, dtype=torch.bool)
    )
    with pytest.raises(SecateursError, match=r"layer1\.0\.conv2 is a diverse group convolution"):
        ChannelGraph(model, (3, 16, 16))
