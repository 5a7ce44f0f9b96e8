"""The trained models kept in ``benchmarks/baselines/``: each loads from safetensors + manifest
and still scores, on the CIFAR-10 (JPEG) test split, the top-1 its manifest recorded when it was
trained. A change to a model definition, the weight loader, the image reader or the
normalisation that altered what these models compute would move that figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from secateurs.data import BatchLoader, load_split
from secateurs.measurement import evaluate
from secateurs.store import load_model

BASELINES = Path(__file__).resolve().parents[1] / "benchmarks" / "baselines"
KEPT = sorted(path.name for path in BASELINES.iterdir() if (path / "manifest.json").is_file())


def test_the_documented_baselines_are_kept() -> None:
    assert KEPT == ["resnet20-cifar10", "resnet56-cifar10", "vgg11_bn_quarter-cifar10"]


@pytest.mark.slow
@pytest.mark.parametrize("name", KEPT)
def test_kept_baseline_scores_its_recorded_top1(
    name: str, cifar10_root: Path, both_cores: None
) -> None:
    model, manifest = load_model(BASELINES / name)
    assert manifest.metrics["epochs"] == 40
    test_set = load_split(cifar10_root, "test", manifest.image_size)
    assert test_set.classes == manifest.classes
    result = evaluate(model, BatchLoader(test_set, 500, manifest.mean, manifest.std))
    assert result["n"] == 10_000
    # one image is 0.01 points: room for two images whose logits round differently on another
    # thread count than the one the model was evaluated with after training
    assert result["top1"] == pytest.approx(manifest.metrics["top1"], abs=0.021)
    assert result["top5"] == pytest.approx(manifest.metrics["top5"], abs=0.021)
