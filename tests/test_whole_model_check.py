"""Grouped layers are kept only when the whole model is faster with them: layers faster alone
can be slower together. Timings are scripted, so the decision is what is tested."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from secateurs.measurement.latency import LatencySettings
from secateurs.pruning.compaction import fastest_form as compaction
from secateurs.pruning.compaction.diverse_conv import DiverseGroupConv2d
from secateurs.pruning.compaction.layer_groups import LayerGroups


def _model_and_groups() -> tuple[nn.Module, dict[str, LayerGroups]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    keep = torch.zeros(8, 8, dtype=torch.bool)
    keep[:4, :4] = True
    keep[4:, 4:] = True
    return model.eval(), {"2": LayerGroups([0] * 4 + [1] * 4, keep)}


def _scripted(layer_means: list[float], whole_mean: float):
    def timed(models, input_size, timing):
        means = layer_means if len(models) == 3 else [whole_mean]
        return {"onnxruntime": {"1": means}}, means

    return timed


@pytest.mark.parametrize(("whole", "kept"), [(0.8, False), (1.3, True)])
def test_grouped_layers_stay_only_if_the_whole_model_is_faster(monkeypatch, whole, kept) -> None:
    model, groups = _model_and_groups()
    images = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        model[2].weight.mul_(groups["2"].keep[:, :, None, None])
        expected = model(images)
    monkeypatch.setattr(compaction, "timed_speedups", _scripted([1.5, 1.2], whole))
    forms, check = compaction.make_diverse_if_faster(
        model, (3, 6, 6), groups, LatencySettings(repeats=3)
    )
    assert check["kept"] is kept and check["geometric_mean"] == whole
    assert isinstance(model[2], DiverseGroupConv2d) is kept
    assert forms[0].choice == ("grouped" if kept else "dense (whole model 0.80x as grouped)")
    with torch.no_grad():
        assert torch.allclose(model(images), expected, atol=1e-5)


def test_untimed_keeps_the_per_layer_choice_without_a_check() -> None:
    model, groups = _model_and_groups()
    forms, check = compaction.make_diverse_if_faster(
        model, (3, 6, 6), groups, LatencySettings(repeats=0)
    )
    assert check == {} and forms[0].choice.endswith("-untimed")
    assert isinstance(model[2], DiverseGroupConv2d)
