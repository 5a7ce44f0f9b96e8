"""SPP's per-layer ratios from the command line (LAYER=RATIO items or a JSON file), and its
Monte Carlo keep frequencies against Bernoulli(1 - p) with a fixed seed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from secateurs.cli.options import add_options, job_from_args
from secateurs.errors import SecateursError
from secateurs.models import create_model
from secateurs.pruning.spp.callback import SPPCallback
from secateurs.pruning.spp.groups import find_layers
from secateurs.pruning.spp.options import SPPOptions, parse_spp_ratios
from secateurs.pruning.spp.state import SPPState
from secateurs.runs.training_time_run import TrainingJob

CIFAR = (3, 32, 32)


def job_from_command_line(tmp_path: Path, *ratios: str) -> TrainingJob:
    parser = argparse.ArgumentParser()
    add_options(parser, TrainingJob)
    add_options(parser, SPPOptions)
    argv = ["model", "--data", "digits", "-o", str(tmp_path / "out"), "--layer-ratios", *ratios]
    args = parser.parse_args(argv)
    options = job_from_args(SPPOptions, args)
    return job_from_args(TrainingJob, args, method="spp", options=options)


def test_layer_ratios_reach_the_callback_from_items_and_from_a_json_file(tmp_path: Path) -> None:
    wanted = {"layer1.0.conv1": 0.5, "layer3.2.conv2": 0.25}
    job = job_from_command_line(tmp_path, "layer1.0.conv1=0.5", "layer3.2.conv2=0.25")
    assert job.options.layer_ratios == wanted
    path = tmp_path / "ratios.json"
    path.write_text(json.dumps(wanted))
    assert job_from_command_line(tmp_path, str(path)).options.layer_ratios == wanted
    callback = job.make_method(CIFAR).callback()
    assert callback.target_macs is None and callback.layer_ratios == wanted
    state = callback.prepare(create_model("resnet20", num_classes=10), CIFAR)
    ratios = dict(zip([layer.name for layer in state.layers], state.ratios, strict=True))
    assert ratios["layer1.0.conv1"] == 0.5 and ratios["layer3.2.conv2"] == 0.25
    assert sum(ratio > 0 for ratio in ratios.values()) == 2  # the others are not pruned


def test_bad_layer_ratios_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SecateursError, match="LAYER=RATIO"):
        parse_spp_ratios(["layer1.0.conv1:0.5"])
    with pytest.raises(SecateursError, match=r"in \[0, 1\)"):
        parse_spp_ratios(["layer1.0.conv1=1.5"])
    callback = SPPCallback("column", layer_ratios={"layer9.conv": 0.5})
    with pytest.raises(SecateursError, match=r"cannot prune layer9\.conv"):
        callback.prepare(create_model("resnet20", num_classes=10), CIFAR)


def test_monte_carlo_keep_frequencies_are_one_minus_p() -> None:
    """Probabilities set by hand on a layer of ResNet-20 (p = 0, 0.1, 0.5, 0.9 on four
    columns, one column pruned for good): over 4,000 draws with seed 0, each column is kept
    with frequency 1 - p within 5 standard errors sqrt(p (1 - p) / 4000) (0 and 1 exactly)."""
    model = create_model("resnet20", num_classes=10)
    layers = find_layers(model, CIFAR, "column")[:1]
    state = SPPState(layers, [0.5], A=0.05, u=0.25)
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 0.3], dtype=torch.float64)
    state.probability[0][:5] = p
    state.pruned[0][4] = True  # pruned for good: never kept, whatever its p
    generator = torch.Generator().manual_seed(0)
    draws = 4000
    kept = torch.zeros(5, dtype=torch.float64)
    for _ in range(draws):
        kept += state.draw(generator)[0][:5].double()
    frequency = kept / draws
    assert frequency[0] == 1.0 and frequency[4] == 0.0
    error = (frequency[1:4] - (1 - p[1:4])).abs()
    assert (error <= 5 * (p[1:4] * (1 - p[1:4]) / draws).sqrt()).all(), frequency.tolist()
