"""Channels no group reads are removed from their producer only where the whole model gets
faster (by default): a few removed leave odd widths, slower in onnxruntime. Timings are
scripted, so the decision is what is tested."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from secateurs.errors import SecateursError
from secateurs.measurement.latency import LatencySettings
from secateurs.pruning.compaction import unread
from secateurs.pruning.compaction.layer_groups import LayerGroups
from secateurs.pruning.sgcnn.callback import SGCNNCallback, SGCNNSettings

TIMED, UNTIMED = LatencySettings(repeats=3), LatencySettings(repeats=0)


def _model_and_groups() -> tuple[nn.Module, dict[str, LayerGroups]]:
    """Two groups of the second convolution read channels 0-2 and 3-5: channels 6 and 7 of the
    first convolution are read by nobody."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    keep = torch.zeros(4, 8, dtype=torch.bool)
    keep[:2, :3] = True
    keep[2:, 3:6] = True
    with torch.no_grad():
        model[2].weight.mul_(keep[:, :, None, None])
    return model.eval(), {"2": LayerGroups([0, 0, 1, 1], keep)}


def _scripted(mean: float, calls: list):
    def timed(models, input_size, timing):
        calls.append(len(models))
        return {"onnxruntime": {"1": [mean]}}, [mean]

    return timed


@pytest.mark.parametrize(("mean", "removed"), [(0.9, False), (1.2, True)])
def test_unread_channels_go_only_if_the_model_is_faster(monkeypatch, mean, removed) -> None:
    model, groups = _model_and_groups()
    images = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        expected = model(images)
    calls: list = []
    monkeypatch.setattr(unread, "timed_speedups", _scripted(mean, calls))
    history, remaining, check = unread.remove_unread_if_faster(model, (3, 6, 6), groups, TIMED)
    assert calls == [2]  # the model as it is against the model without them, once
    assert check["channels"] == 2 and check["removed"] is removed
    assert check["geometric_mean"] == mean
    assert model[0].out_channels == (6 if removed else 8)
    assert remaining["2"].keep.shape == ((4, 6) if removed else (4, 8))
    assert history == ([["0", True, [6, 7]]] if removed else [])
    with torch.no_grad():
        assert torch.allclose(model(images), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("policy", "timing", "width"),
    [("always", TIMED, 6), ("never", TIMED, 8), ("if-faster", UNTIMED, 6)],
)
def test_always_never_and_untimed_do_not_time(monkeypatch, policy, timing, width) -> None:
    model, groups = _model_and_groups()
    calls: list = []
    monkeypatch.setattr(unread, "timed_speedups", _scripted(0.5, calls))
    _, _, check = unread.remove_unread_if_faster(model, (3, 6, 6), groups, timing, policy)
    assert calls == []
    assert model[0].out_channels == width and check["removed"] is (width == 6)


def test_an_unknown_policy_is_refused() -> None:
    model, groups = _model_and_groups()
    with pytest.raises(SecateursError, match="not 'sometimes'"):
        unread.remove_unread_if_faster(model, (3, 6, 6), groups, TIMED, "sometimes")


def test_the_callback_refuses_an_unknown_policy_before_training() -> None:
    with pytest.raises(SecateursError, match="unread channels: one of if-faster, always, never"):
        SGCNNCallback(SGCNNSettings(unread="sometimes"), (3, 8, 8))
