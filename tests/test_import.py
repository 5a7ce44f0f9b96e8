"""``secateurs import`` and ``secateurs.import_model``: weights trained elsewhere become an ordinary
model directory that eval, prune and load take; every bad input is one line, exit 2, nothing
written."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import secateurs
from secateurs.cli.main import main
from secateurs.data import BatchLoader, load_split
from secateurs.measurement import evaluate
from secateurs.models import user_factory

TINY = """
from torch import nn

class Tiny(nn.Module):
    def __init__(self, num_classes=10, width=8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))

def broken(num_classes=10):
    raise ValueError("no width fits")
"""


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request) -> str:
    """A module of the user's own in the working directory (a fresh name per test), and no
    factory allowed yet."""
    name = f"usernets_{request.node.name.replace('[', '_').replace(']', '')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(TINY))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(user_factory, "_ALLOWED", set())
    return name


def trained_tiny(module: str) -> torch.nn.Module:
    """The user's model with weights of its own (BatchNorm statistics not the defaults)."""
    import importlib
    import sys

    sys.path.insert(0, str(Path.cwd()))
    try:
        model = importlib.import_module(module).Tiny(num_classes=10)
    finally:
        sys.path.remove(str(Path.cwd()))
    torch.manual_seed(0)
    for norm in (model.features[1], model.features[4]):
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 1.5)
    return model.eval()


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("secateurs: error: "), lines
    return lines[0]


def test_own_class_imports_evaluates_prunes_and_reloads(user_code: str, tmp_path, capsys) -> None:
    model = trained_tiny(user_code)
    save_file(model.state_dict(), tmp_path / "tiny.safetensors")
    out = tmp_path / "imported"
    spec = f"{user_code}:Tiny"
    argv = ["import", spec, "--weights", "tiny.safetensors", "--data", "digits", "-o", str(out)]
    assert main([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["classes"], printed["input_size"], printed["missing_keys"]) == (
        10,
        [1, 8, 8],
        0,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["architecture"] == f"factory:{spec}"
    assert manifest["classes"] == [str(digit) for digit in range(10)]

    # eval reads the imported directory: the same top-1 as the model it came from
    test_set = load_split("digits", "test")
    mean, std = manifest["mean"], manifest["std"]
    expected = evaluate(model, BatchLoader(test_set, 256, mean, std))["top1"]
    assert main(["--allow-factory", spec, "eval", str(out), "--data", "digits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(expected)

    # prune takes it too; the pruned model reloads from its manifest (the factory recorded) ...
    pruned_dir = tmp_path / "pruned"
    prune = ["prune", str(out), "--method", "l1", "--target-macs", "0.5", "-o", str(pruned_dir)]
    assert main(["--allow-factory", spec, *prune, "--latency-repeats", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cost_after"]["macs"] < 0.55 * report["cost_before"]["macs"]
    user_factory._ALLOWED.clear()
    with pytest.raises(secateurs.SecateursError, match="--allow-factory"):
        secateurs.load(pruned_dir)
    again, _ = secateurs.load(pruned_dir, allow_factory=True)
    # ... or onto an un-pruned instance given as base, and both give the same outputs
    onto, _ = secateurs.load(pruned_dir, base=trained_tiny(user_code))
    images = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(again(images), onto(images))
        assert again(images).shape == (4, 10)
    assert sum(p.numel() for p in again.parameters()) < sum(p.numel() for p in model.parameters())


def test_torchvision_checkpoint_is_unwrapped_and_gives_the_same_outputs(tmp_path) -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    original = torchvision.models.squeezenet1_1(num_classes=5).eval()
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "model": original.state_dict()}, path)
    model, manifest = secateurs.import_model(
        "torchvision:squeezenet1_1", weights=path, num_classes=5, input_size=[48]
    )
    assert manifest.input_size == [3, 48, 48] and manifest.classes == list("01234")
    assert manifest.mean == [0.485, 0.456, 0.406]  # torchvision's models are ImageNet's
    images = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(images), original(images))


def test_timm_model_imports_and_prunes(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    original = timm.create_model("test_resnet", pretrained=False, num_classes=4).eval()
    save_file(original.state_dict(), tmp_path / "w.safetensors")
    model, manifest = secateurs.import_model(
        "timm:test_resnet", weights=tmp_path / "w.safetensors", num_classes=4, input_size=[32]
    )
    assert manifest.architecture == "timm:test_resnet"
    assert manifest.arguments == {"num_classes": 4}
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(images), original(images))
    pruned = secateurs.prune(model, method="l1", target_macs=0.6, example_input=images[:1])
    assert pruned.achieved == pytest.approx(0.6, abs=0.02)
    secateurs.save(pruned, tmp_path / "pruned", manifest=manifest)
    again, _ = secateurs.load(tmp_path / "pruned")  # rebuilt from "timm:test_resnet" + pruning
    with torch.no_grad():
        assert torch.allclose(again(images), pruned.model(images), atol=1e-5)


def test_bad_inputs_are_one_line_exit_2_and_write_nothing(
    user_code, tmp_path, capsys, caplog
) -> None:
    model = trained_tiny(user_code)
    save_file(model.state_dict(), tmp_path / "tiny.safetensors")
    wide = trained_tiny(user_code)
    wide.fc = torch.nn.Linear(16, 3)
    save_file(wide.state_dict(), tmp_path / "other.safetensors")
    torch.save(model, tmp_path / "pickled.pt")  # a whole pickled model: needs its class to load
    save_file({"head.weight": torch.zeros(2, 2)}, tmp_path / "alien.safetensors")
    out = tmp_path / "never"
    base = ["import", f"{user_code}:Tiny", "--input-size", "1", "8", "8", "-o", str(out)]
    cases = {
        "unknown model 'resnet_nope'": ["import", "resnet_nope", "-o", str(out)],
        "cannot import 'no_such_module'": ["import", "no_such_module:Net", "-o", str(out)],
        "broken(num_classes=3) raised ValueError: no width fits": [
            "import",
            f"{user_code}:broken",
            "--num-classes",
            "3",
            "--input-size",
            "8",
            "-o",
            str(out),
        ],
        "fc.weight is (3, 16) in the file and (10, 16) in the model": [
            *base,
            "--weights",
            "other.safetensors",
        ],
        "none of their 1 names": [*base, "--weights", "alien.safetensors"],
        f"it pickles {user_code}.Tiny": [*base, "--weights", "pickled.pt"],
        "no such weights file": [*base, "--weights", "missing.pt"],
    }
    for expected, argv in cases.items():
        assert main(argv) == 2, expected
        line = one_error_line(capsys)
        assert expected in line, line
        assert not out.exists()
    # --strict refuses a file that leaves keys missing, which is otherwise reported and loaded
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    save_file(state, tmp_path / "headless.safetensors")
    assert main([*base, "--weights", "headless.safetensors", "--strict"]) == 2
    assert "2 missing and 0 unexpected keys" in one_error_line(capsys)
    assert not out.exists()
    assert main([*base, "--weights", "headless.safetensors"]) == 0
    assert "2 missing keys (left as initialised): fc.bias, fc.weight" in caplog.text


def test_a_saved_factory_model_is_not_rebuilt_without_being_named(user_code, tmp_path) -> None:
    model, manifest = secateurs.import_model(f"{user_code}:Tiny", input_size=[1, 8, 8])
    secateurs.save(model, tmp_path / "m", manifest=manifest)
    user_factory._ALLOWED.clear()  # a new process: the manifest alone must not run code
    assert main(["measure", str(tmp_path / "m"), "--repeats", "1"]) == 2
