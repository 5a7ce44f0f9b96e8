"""Device-clean training-time methods: what SPP, SG-CNN, gradual Taylor and Campfire compute inside
the training loop is created on the model's device. As in test_device.py, the *default* device is
made one the model is not on (``meta``) while a method's hooks run: a tensor created without
``device=`` lands there, and mixing it with the model's CPU tensors fails, exactly as a CPU tensor
beside a model on ``cuda`` would."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

import secateurs
from secateurs.pruning.training_time import training_time_methods
from secateurs.train.callback import Callback

HOOKS = ("on_train_start", "before_step", "after_backward", "after_step", "on_epoch_end")
OPTIONS = {  # each method's quickest settings that still prune during the one epoch
    "spp": {"granularity": "channel", "target_macs": 0.7},
    "sgcnn": {"target_macs": 0.7, "groups": 2, "scheme": "G"},
    "taylor-gradual": {"target_macs": 0.8, "interval": 1, "per_step": 8},
    "campfire": {"granularity": "window", "sparsity": 0.5, "interval": 2},
}


@pytest.fixture(scope="module")
def trained(digits_model: Path) -> Path:
    return digits_model


def _under_meta(hook):
    @functools.wraps(hook)
    def wrapped(*args, **kwargs):
        with torch.device("meta"):
            return hook(*args, **kwargs)

    return wrapped


def _callback_classes() -> list[type]:
    found, todo = [], [Callback]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_training_time_method_has_options_here() -> None:
    assert set(OPTIONS) == set(training_time_methods())


@pytest.mark.parametrize("method", sorted(OPTIONS))
def test_training_time_hooks_create_every_tensor_on_the_models_device(
    method: str, trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, manifest = secateurs.load(trained)
    data = secateurs.load_data("digits", manifest=manifest, train_subset=256, test_subset=64)
    training_time_methods()  # import every method, so its callback class exists
    patched = 0
    for cls in _callback_classes():
        for hook in HOOKS:
            if hook in vars(cls):
                monkeypatch.setattr(cls, hook, _under_meta(vars(cls)[hook]))
                patched += 1
    assert patched >= 8  # the four methods' callbacks override at least two hooks each
    images = torch.randn(2, *manifest.input_size)
    pruned = secateurs.prune_while_training(
        model, data, method=method, example_input=images, epochs=1, batch_size=64, threads=1,
        latency_repeats=0, **OPTIONS[method],
    )  # fmt: skip
    # SPP's probabilities need more than 4 steps to reach 1: it masks, but prunes nothing yet
    assert pruned.achieved == 1.0 if method == "spp" else pruned.achieved < 1.0
    assert all(p.device.type == "cpu" for p in pruned.model.parameters())
    with torch.no_grad():
        assert torch.isfinite(pruned.model.eval()(images)).all()
