"""The Python API runs the commands' jobs, so every refusal their checks make (``check()`` in
runs/, the options' own checks, a method's ``build``) reaches a script as one
:class:`SecateursError` naming what to change, before anything is computed."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import secateurs
from secateurs.errors import SecateursError


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean((2, 3)))


IMAGE = torch.randn(1, 1, 8, 8)

PRUNE_REFUSALS: list[tuple[dict[str, Any], str]] = [
    # PruneJob.check: a latency target needs the engine's allocation, global, in one step
    ({"method": "pfp", "target_latency": 0.5}, r"--target-latency ranks a method's scores; pfp"),
    ({"method": "wsp", "target_latency": 0.5}, r"--target-latency ranks a method's scores; wsp"),
    ({"method": "l1", "target_latency": 0.5, "strategy": "uniform"}, "drop --strategy uniform"),
    ({"method": "l1", "target_latency": 0.5, "steps": 2}, "a latency target is met in one step"),
    ({"method": "l1", "layer_ratios": {"conv1": 0.5}, "steps": 2}, "applied in one step"),
    # what runs training images needs data
    ({"method": "l1", "fold_bias": True}, r"--fold-bias runs training images .* pass --data"),
    ({"method": "l1", "recalibrate_bn": 2}, r"--recalibrate-bn runs training images"),
    ({"method": "l1", "distill": 0.5}, r"--distill takes|--distill applies to fine-tuning"),
    # the method's own parameters, and every option's own check
    ({"method": "l1", "selection": "randomized"}, r"bad parameter for method 'l1'"),
    ({"method": "nope"}, r"unknown method 'nope'"),
    ({"method": "l1", "target_macs": 1.5}, r"--target-macs must be between 0 and 1"),
    ({"method": "l1", "round_to": 0}, r"--round-to takes a whole number of at least 1 or auto"),
    ({"method": "l1", "min_channels": 0}, r"--min-channels must be at least 1, not 0"),
    ({"method": "l1", "normalize": None, "scoring_batches": 0}, r"--scoring-batches must be"),
    ({"method": "l1", "latency_backends": ("tpu",)}, r"--latency-backends knows eager"),
    ({"method": "l1", "device": "tpu"}, r"--device"),
    ({"method": "l1", "target_macs": 0.5, "target_params": 0.5}, "give one of target_macs"),
]


@pytest.mark.parametrize(("options", "message"), PRUNE_REFUSALS)
def test_every_refusal_of_the_prune_job_is_one_secateurs_error(
    options: dict[str, Any], message: str
) -> None:
    options = dict(options)
    method = options.pop("method")
    with pytest.raises(SecateursError, match=message):
        secateurs.prune(TinyNet(), method=method, example_input=IMAGE, **options)


def test_the_latency_target_refusal_names_the_target_not_a_traceback() -> None:
    """The issue's own case: PFP with a latency target, data given, ended in a KeyError."""
    data = secateurs.load_data("digits", train_subset=64, test_subset=32)
    with pytest.raises(SecateursError, match="--target-latency"):
        secateurs.prune(TinyNet(), method="pfp", target_latency=0.5, example_input=IMAGE, data=data)


FINE_TUNE_REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"lr": -1.0}, r"--finetune-lr must be positive, not -1.0"),
    ({"distill": 2.0}, r"--distill takes a weight in \[0, 1\], not 2.0"),
    ({"distill": 0.5}, "distill needs the teacher model"),
    ({"batch_size": 0}, r"--batch-size must be at least 1, not 0"),
    ({"momentum": 0.9}, "fine_tune has no option momentum"),
]


@pytest.mark.parametrize(("options", "message"), FINE_TUNE_REFUSALS)
def test_every_refusal_of_fine_tuning_is_one_secateurs_error(
    options: dict[str, Any], message: str
) -> None:
    data = secateurs.load_data("digits", train_subset=64, test_subset=32)
    model = TinyNet()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(SecateursError, match=message):
        secateurs.fine_tune(model, data, epochs=1, **options)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


TRAINING_TIME_REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("nope", {}, r"training-time methods are spp, sgcnn, campfire, taylor-gradual, not 'nope'"),
    ("sgcnn", {"step": 1.5}, r"--step must be in \(0, 1\), not 1.5"),
    ("sgcnn", {"groups": 0}, r"--groups must be at least 1, not 0"),
    ("sgcnn", {"balance": True}, r"sgcnn has no option balance \(its options: groups"),
    ("spp", {"A": 2.0}, r"--A must be in \(0, 1\], not 2.0"),
    ("spp", {"layer_ratios": {"conv1": 0.5}, "sensitivity": 1.0}, "not both"),
    ("campfire", {"prune_end": 5.0}, "it must start before it ends"),
    ("campfire", {"granularity": "diagonal"}, "diagonal"),
    ("taylor-gradual", {"momentum": 1.0}, r"--momentum must be in \[0, 1\), not 1.0"),
    ("spp", {"target_macs": 0.0}, r"--target-macs must be between 0 and 1"),
    ("spp", {"lr": 0.0}, r"--lr must be positive, not 0.0"),
]


@pytest.mark.parametrize(("method", "options", "message"), TRAINING_TIME_REFUSALS)
def test_every_refusal_of_a_training_time_job_is_one_secateurs_error(
    method: str, options: dict[str, Any], message: str
) -> None:
    data = secateurs.load_data("digits", train_subset=64, test_subset=32)
    with pytest.raises(SecateursError, match=message):
        secateurs.prune_while_training(
            TinyNet(), data, method=method, example_input=IMAGE, epochs=1, **options
        )


def test_the_api_puts_torch_global_state_back() -> None:
    """A refusal or a run: the caller's threads, determinism and random stream are as before."""
    data = secateurs.load_data("digits", train_subset=128, test_subset=32)
    model = TinyNet()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    secateurs.fine_tune(model, data, epochs=1, threads=2, seed=7, batch_size=64)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.rand(3), expected)
