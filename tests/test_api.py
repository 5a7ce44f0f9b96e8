"""The Python front door: the README's example runs as written, and a class secateurs does not
know saves and reloads onto a fresh instance without pickle."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import secateurs
from hand_counts import RESNET20_MACS, RESNET20_PARAMS
from secateurs.errors import SecateursError
from secateurs.train.trainer import weights_digest

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The same path in Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def pinned(code: str) -> str:
    """The README's example with every setting that involves timing pinned: exact widths, so the
    example and its command-line twin make the same plan whatever the defaults become."""
    if "round_to=" in code:
        return code
    return code.replace("target_macs=0.5,", "target_macs=0.5, round_to=1,", 1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written_and_matches_its_command_line_twin(
    cifar10_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    child_env: dict[str, str],
    tmp_path: Path,
    both_cores: None,
) -> None:
    """The README's Python example, then the same prune on the command line (same seed, data
    subsets and epochs): the same channels removed, bitwise-identical weights after the
    fine-tuning, the same pruning record."""
    code = pinned(readme_example())
    assert "round_to=1" in code
    assert len([line for line in code.splitlines() if line.strip()]) < 15
    monkeypatch.chdir(ROOT)
    saved = ROOT / "runs" / "r20-taylor-api"
    shutil.rmtree(saved, ignore_errors=True)
    namespace: dict = {}
    try:
        exec(compile(code, "README.md", "exec"), namespace)  # the text users copy
        result, pruned, again = namespace["result"], namespace["pruned"], namespace["again"]
        # ResNet-20's MACs and parameters counted by hand (tests/hand_counts.py); half kept
        assert result.baseline_cost.macs == RESNET20_MACS
        assert result.baseline_cost.params == RESNET20_PARAMS
        assert abs(result.cost.macs / result.baseline_cost.macs - 0.5) <= 0.01
        assert set(result.speedup) == {"eager", "onnxruntime"}
        images = torch.randn(4, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(pruned.model.eval()(images), again(images))
        # the caller's model is untouched by prune and fine-tuning
        kept, _ = secateurs.load("benchmarks/baselines/resnet20-cifar10")
        assert weights_digest(namespace["model"]) == weights_digest(kept)
    finally:
        shutil.rmtree(saved, ignore_errors=True)
    twin = tmp_path / "cli"
    argv = [
        "prune", ROOT / "benchmarks/baselines/resnet20-cifar10", "--method", "taylor",
        "--target-macs", "0.5", "--round-to", "1", "--data", cifar10_root,
        "--train-subset", "2048", "--test-subset", "1000", "--finetune-epochs", "1",
        "--latency-repeats", "0", "-o", twin,
    ]  # fmt: skip
    # the twin scores on as many threads as the example did here (both_cores: 2)
    env = dict(child_env, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    done = subprocess.run(
        [sys.executable, "-m", "secateurs", *map(str, argv)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cli_model, cli_manifest = secateurs.load(twin)
    mine, theirs = pruned.model.state_dict(), cli_model.state_dict()
    assert list(mine) == list(theirs)
    different = [name for name in mine if not torch.equal(mine[name], theirs[name])]
    assert different == []
    recorded = cli_manifest.pruning
    assert pruned.record.method == recorded.method == "taylor"
    assert pruned.record.oneshot == recorded.oneshot  # target, achieved, plans, round_to, ...
    assert recorded.oneshot.round_to == 1


class SmallNet(nn.Module):
    """A class the model registry has never heard of."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 24, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(24)
        self.head = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean((2, 3)))


def test_a_custom_class_reloads_onto_a_fresh_instance(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SmallNet().eval()
    image = torch.randn(1, 3, 12, 12)
    pruned = secateurs.prune(model, method="l1", target_macs=0.5, example_input=image)
    assert model.conv1.out_channels == 16  # the caller's model is not pruned
    assert pruned.model.conv1.out_channels < 16 and pruned.model.conv2.out_channels < 24
    secateurs.save(pruned, tmp_path / "mine")
    with pytest.raises(SecateursError, match="base=YourModel"):
        secateurs.load(tmp_path / "mine")
    again, manifest = secateurs.load(tmp_path / "mine", base=SmallNet())
    assert manifest.architecture == "custom:test_api.SmallNet"
    assert again.conv1.out_channels == pruned.model.conv1.out_channels
    images = torch.randn(3, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(again(images), pruned.model(images))


def test_measure_against_a_baseline_reports_the_macs_and_speed_up() -> None:
    torch.manual_seed(0)
    model = SmallNet().eval()
    image = torch.randn(1, 3, 12, 12)
    pruned = secateurs.prune(model, method="l1", target_macs=0.5, example_input=image)
    found = secateurs.measure(
        pruned.model,
        example_input=image,
        baseline=model,
        batch_sizes=(2,),
        repeats=3,
        backends=("eager",),
        threads=1,
    )
    # SmallNet by hand at 12x12: conv1 3*16*9*144 + conv2 16*24*9*144 + head 24*5 (+ BN, bias)
    assert found.baseline_cost.macs >= 3 * 16 * 9 * 144 + 16 * 24 * 9 * 144 + 24 * 5
    assert abs(found.cost.macs / found.baseline_cost.macs - 0.5) <= 0.05
    row = found.speedup["eager"]["2"]
    assert row.speedup == pytest.approx(row.before_ms / row.after_ms, rel=1e-3)
    reduction = found.baseline_cost.macs / found.cost.macs
    assert row.realisation == pytest.approx(row.speedup / reduction, rel=1e-3)


def test_list_methods_names_every_method_with_its_command() -> None:
    methods = {m["name"]: m for m in secateurs.list_methods()}
    assert {"l1", "l2", "taylor", "bn_scale", "pfp", "wsp", "random", "spp"} <= set(methods)
    assert methods["spp"]["kind"] == "training-time"
    assert methods["spp"]["command"].startswith("secateurs spp")
    assert methods["taylor"]["command"].endswith("--data PATH")
    assert "resnet20" in secateurs.list_models()


def test_measure_without_a_baseline_times_the_model_alone(monkeypatch) -> None:
    from secateurs.runs import measuring

    calls = []
    real = measuring._timings

    def counted(backend, models, input_size, settings):
        calls.append(len(models))
        return real(backend, models, input_size, settings)

    monkeypatch.setattr(measuring, "_timings", counted)
    image = torch.randn(1, 3, 12, 12)
    found = secateurs.measure(
        SmallNet().eval(),
        example_input=image,
        batch_sizes=(2,),
        repeats=2,
        backends=("eager",),
        threads=1,
    )
    assert calls == [1]  # one model timed, not the model against itself
    assert set(found.latency_ms) == {"eager"} and found.latency_ms["eager"]["2"] > 0
    assert found.speedup == {} and found.baseline_cost is None


def test_the_measure_function_no_longer_hides_the_measurement_package() -> None:
    """``secateurs.measure`` is the function; the package that measures is
    ``secateurs.measurement``, reachable as an attribute after ``import secateurs``."""
    import secateurs.measurement.latency

    assert callable(secateurs.measure)
    assert secateurs.measure is secateurs.api.measure
    assert secateurs.measurement.latency.measure_latency is not None
    assert {"Pruned", "Measurement", "Report", "Manifest", "LabelledData", "Training"} <= set(
        secateurs.__all__
    )
