"""The model zoo: every registered model builds, has the documented size, and fails helpfully."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from ci_guard import require
from secateurs.errors import SecateursError
from secateurs.models import create_model, list_models, model_entry


@pytest.mark.parametrize("name", list_models())
def test_every_model_classifies_cifar_inputs(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_described_parameter_count_matches(name: str) -> None:
    """The "0.27M params" of each description is the real count, rounded as written."""
    found = re.search(r"(\d+)\.(\d+)M params", model_entry(name).description)
    assert found, model_entry(name).description
    digits = len(found.group(2))
    count = sum(p.numel() for p in create_model(name, num_classes=10).parameters())
    assert round(count / 1e6, digits) == float(found.group(0).split("M")[0])


def test_resnet20_parameter_count() -> None:
    # 272,474 = the paper's 0.27M (269,722 with option-A shortcuts) + 2,752 for the two 1x1
    # projection shortcuts with BatchNorm: 16*32 + 2*32 + 32*64 + 2*64
    model = create_model("resnet20", num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == 272_474


@pytest.mark.parametrize("depth", [20, 32, 56, 110])
def test_resnet_depth_counts_convolutions(depth: int) -> None:
    model = create_model(f"resnet{depth}", num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    # the stem, 2 per block (6n blocks = depth - 2 layers), and 2 projection shortcuts
    assert len(convs) == (depth - 1) + 2
    assert sum(m.kernel_size == (1, 1) for m in convs) == 2
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 1


def test_in_channels_and_num_classes() -> None:
    model = create_model("resnet20", num_classes=7, in_channels=1).eval()
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 7)


def test_unknown_model_suggests_a_close_name() -> None:
    with pytest.raises(SecateursError, match=r"unknown model 'resnet21' \(did you mean .*resnet20"):
        create_model("resnet21")
    with pytest.raises(SecateursError, match="does not take these arguments"):
        create_model("resnet20", colour="blue")


def test_vgg11_bn_half_head() -> None:
    model = create_model("vgg11_bn_half", num_classes=10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    assert linears[0].in_features == 256 * 2 * 2
    assert [m.out_features for m in linears] == [256, 256, 10]


def test_vgg11_bn_quarter_head_and_size() -> None:
    model = create_model("vgg11_bn_quarter", num_classes=10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears[0].in_features == 128 * 2 * 2
    assert [m.out_features for m in linears] == [128, 128, 10]
    assert sum(p.numel() for p in model.parameters()) == 661_274
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_torchvision_model_builds_without_download(tmp_path: Path, monkeypatch) -> None:
    require("torchvision")
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    model = create_model("torchvision:resnet18", num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == 11_181_642
    assert list(tmp_path.iterdir()) == []
    assert model_entry("torchvision:resnet18").input_size == (3, 224, 224)
    # the arguments secateurs records for every model (as training does) are accepted
    create_model("torchvision:resnet18", num_classes=10, in_channels=3)
    with pytest.raises(SecateursError, match="3-channel"):
        create_model("torchvision:resnet18", num_classes=10, in_channels=1)
    with pytest.raises(SecateursError, match="did you mean resnet18"):
        create_model("torchvision:resnet19")


def test_torchvision_models_with_auxiliary_heads_train_on_plain_logits() -> None:
    require("torchvision")
    model = create_model("torchvision:googlenet", num_classes=10).train()
    logits = model(torch.randn(2, 3, 64, 64))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 10)


def test_models_pattern_filters_torchvision_names_too(capsys) -> None:
    require("torchvision")
    from secateurs.cli.main import main

    assert main(["models", "resnet1*", "--torchvision"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == [
        "resnet110",
        "torchvision:resnet101",
        "torchvision:resnet152",
        "torchvision:resnet18",
    ]


@pytest.mark.parametrize("width", [0.01, 0, -1, "x", True])
def test_mobilenet_width_that_leaves_no_channels_is_refused(width: object) -> None:
    with pytest.raises(SecateursError, match="width must be a number of at least 1/16"):
        create_model("mobilenetv2", width=width)


def test_a_model_too_deep_for_the_images_is_refused_before_training(tmp_path: Path) -> None:
    from secateurs.runs.train_run import run_training
    from secateurs.train.config import TrainConfig

    config = TrainConfig(model="vgg16_bn", data="digits", epochs=1, threads=1)
    with pytest.raises(SecateursError, match=r"vgg16_bn cannot take \(1, 8, 8\) images"):
        run_training(config, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
