"""Device-clean by construction: nothing a method, the loader or the latency timer computes is
created on a device of its own choosing. There is no GPU here, so the test makes the *default*
device one the model is not on (``meta``): a tensor created without ``device=`` lands there and
any operation mixing it with the model's CPU tensors fails, exactly as a CPU tensor would beside
a model on ``cuda``."""

from __future__ import annotations

import pytest
import torch

from pruning_helpers import randomise_batchnorm
from secateurs.device import model_device, resolve_device
from secateurs.errors import SecateursError
from secateurs.models import create_model
from secateurs.pruning import ChannelGraph
from secateurs.pruning.methods import ScoringData, create_method, list_methods

INPUT = (3, 8, 8)


@pytest.fixture(scope="module")
def scoring() -> tuple[torch.nn.Module, ScoringData]:
    torch.manual_seed(0)
    model = randomise_batchnorm(create_model("resnet20", num_classes=10).eval())
    batches = [(torch.randn(8, *INPUT), torch.randint(0, 10, (8,))) for _ in range(2)]
    return model, ScoringData(batches)


@pytest.mark.parametrize("name", list_methods())
def test_scoring_creates_every_tensor_on_the_models_device(name: str, scoring) -> None:
    model, data = scoring
    graph = ChannelGraph(model, INPUT)
    with torch.device("meta"):  # the default device is not the model's
        scores = create_method(name, seed=0).score(graph, data)
    assert set(scores) == {group.root for group in graph.prunable_groups}
    for root, score in scores.items():
        assert score.device == torch.device("cpu"), root
        assert score.shape == (graph.group(root).size,) and torch.isfinite(score).all()


def test_a_device_that_is_not_there_is_one_line() -> None:
    with pytest.raises(SecateursError, match="not available"):
        resolve_device("cuda:0" if not torch.cuda.is_available() else "cuda:99")
    with pytest.raises(SecateursError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    assert resolve_device(None) == torch.device("cpu") == resolve_device("cpu")
    assert model_device(torch.nn.Linear(2, 2).to("meta")) == torch.device("meta")


def test_batches_and_timing_inputs_go_to_the_models_device() -> None:
    from secateurs.data import BatchLoader, load_split
    from secateurs.measurement.backends.eager import prepare_input
    from secateurs.measurement.latency import synchronised

    digits = load_split("digits", "test").subset(10)
    images, labels = next(iter(BatchLoader(digits, 4, [0.5], [0.25]).to("meta")))
    assert (images.device.type, labels.device.type, images.shape) == ("meta", "meta", (4, 1, 8, 8))
    model = torch.nn.Conv2d(1, 2, 3).to("meta")
    assert prepare_input(model, (1, 8, 8), 2, False)[1].device.type == "meta"
    assert not synchronised(torch.nn.Conv2d(1, 2, 3))  # a CPU needs no synchronisation


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "model", "--data", "digits"],
        ["measure", "model"],
        ["prune", "model", "--method", "l1", "-o", "out"],
        ["train", "--data", "digits", "--out", "out"],
    ],
)
def test_every_computing_command_refuses_a_missing_device(argv, tmp_path, monkeypatch, capsys):
    from secateurs.cli.main import main

    monkeypatch.chdir(tmp_path)
    missing = "cuda:7" if torch.cuda.device_count() < 8 else "mps"
    assert main([*argv, "--device", missing]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not available" in err[0], err
    assert not (tmp_path / "out").exists()
