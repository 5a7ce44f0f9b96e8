"""SPP's per-layer ratios from a sensitivity scan: each layer's largest ratio within the allowed
drop; the scan leaves the model as it was; `secateurs spp --sensitivity` trains with them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from digits_model import train_digits
from secateurs.models import create_model
from secateurs.pruning.spp.groups import find_layers
from secateurs.pruning.spp.sensitivity import ratios_from_scan, sensitivity_scan


def test_each_layer_gets_its_largest_ratio_within_the_drop() -> None:
    scan = {
        "a": {"0.1": 90.0, "0.5": 89.0, "0.6": 88.9, "0.9": 80.0},
        "b": {"0.1": 88.5, "0.5": 70.0},
        "c": {"0.1": 90.2, "0.2": 89.9, "0.3": 91.0},
    }
    assert ratios_from_scan(90.0, scan, 1.0) == {"a": 0.5, "b": 0.0, "c": 0.3}
    assert ratios_from_scan(90.0, scan, 1.5) == {"a": 0.6, "b": 0.1, "c": 0.3}


def test_the_scan_prunes_one_layer_at_a_time_and_restores_it() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers = find_layers(model, (3, 16, 16), "column")[:2]
    images = torch.randn(16, 3, 16, 16)
    with torch.no_grad():
        labels = model(images).argmax(1)  # the model is right on every image
    base, scan = sensitivity_scan(model, layers, [(images, labels)], ratios=(0.2, 0.9))
    assert base == 100.0
    assert list(scan) == [layers[0].name, layers[1].name]
    assert all(set(by) == {"0.2", "0.9"} for by in scan.values())
    assert min(scan[layers[0].name].values()) < 100.0  # pruning 90% of a layer changes answers
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_spp_trains_with_the_scanned_ratios(tmp_path: Path) -> None:
    from secateurs.cli.main import main
    from secateurs.report import read_report

    base = train_digits(tmp_path / "base")
    out = tmp_path / "run"
    argv = ["spp", str(base), "--data", "digits", "-o", str(out)]
    argv += ["--threads", "1", "--batch-size", "64", "--latency-repeats", "0", "--epochs", "1"]
    assert main([*argv, "--sensitivity", "3"]) == 0
    scanned = json.loads((out / "sensitivity.json").read_text())
    ratios = scanned["ratios"]
    assert set(ratios.values()) <= {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}
    for name, ratio in ratios.items():  # the largest ratio within 3 points, checked by hand
        fine = [
            float(r) for r, top1 in scanned["scan"][name].items() if top1 >= scanned["top1"] - 3
        ]
        assert ratio == max(fine, default=0.0)
    params = read_report(out).pruning.details["spp"]["params"]
    assert params["layer_ratios"] == ratios and params["target_macs"] is None
