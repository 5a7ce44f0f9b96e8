"""A pruned model saves as safetensors + JSON and reloads in a fresh process to the same outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from secateurs.models import create_model
from secateurs.pruning import Target
from secateurs.pruning.methods import create_method
from secateurs.pruning.prune import PruneSettings, prune_model
from secateurs.store import Manifest, load_model, save_model

INPUT = (3, 32, 32)

RELOAD = """
import sys, torch
from secateurs.store import load_model
model, _ = load_model(sys.argv[1])
torch.manual_seed(0)
with torch.no_grad():
    torch.save(model(torch.randn(3, 3, 32, 32)), sys.argv[2])
"""


@pytest.mark.slow  # MobileNetV2 in two steps, and a new Python process
def test_pruned_model_reloads_in_a_fresh_process(tmp_path: Path) -> None:
    torch.manual_seed(0)  # the weights decide whether the first step overshoots the second's goal
    model = create_model("mobilenetv2", num_classes=10)
    method = create_method("l1")
    outcome = prune_model(model, INPUT, method, PruneSettings(Target("macs", 0.5), steps=2))
    assert len(outcome.plans) == 2  # the second step was not skipped
    manifest = Manifest(
        "mobilenetv2",
        {"num_classes": 10},
        [str(i) for i in range(10)],
        list(INPUT),
        [0.5] * 3,
        [0.25] * 3,
        pruning=outcome.record(method, Target("macs", 0.5)),
    )
    save_model(model.eval(), tmp_path / "pruned", manifest)
    stored = json.loads((tmp_path / "pruned" / "manifest.json").read_text())
    assert len(stored["pruning"]["rounds"]["histories"]) == 2
    result = tmp_path / "out.pt"
    subprocess.run(
        [sys.executable, "-c", RELOAD, str(tmp_path / "pruned"), str(result)],
        check=True,
        # PYTHONPATH kept: the code under test (a worktree src), not an installed copy
        env={"OMP_NUM_THREADS": "1", "PATH": "", **_pythonpath()},
    )
    torch.manual_seed(0)
    with torch.no_grad():
        expected = model(torch.randn(3, 3, 32, 32))
    assert torch.equal(torch.load(result, weights_only=True), expected)
    reloaded, _ = load_model(tmp_path / "pruned")
    assert sum(p.numel() for p in reloaded.parameters()) == sum(
        p.numel() for p in model.parameters()
    )


def _pythonpath() -> dict[str, str]:
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
