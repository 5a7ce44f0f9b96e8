"""Make the saved-model fixtures of tests/test_manifest_record.py: one small pruned model per kind
of pruning record a manifest holds, each with ``logits.safetensors`` (its outputs on a fixed input).

Run with the code whose manifests are to be kept (its ``src`` on PYTHONPATH), e.g.

    PYTHONPATH=/work/wt-base/src OMP_NUM_THREADS=1 python make_fixtures.py --out DIR

A ResNet-20 trained one epoch on the digits (1x8x8) is pruned with l1 to 10% of its MACs (the
``rounds`` fixture); the training-time methods start from that small model, so every fixture
stays small. ``history`` is the ``rounds`` fixture with its pruning rewritten as the very old
``{"history": [...]}`` form.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

DIGITS = ["--data", "digits", "--seed", "0", "--threads", "1"]
UNTIMED = ["--latency-repeats", "0"]
PRUNE = ["--method", "l1", "--target-macs", "0.1", "--min-channels", "2"]
SPP = ["--epochs", "2", "--interval", "1"]
BASE = "rounds"  # the fixture the training-time methods start from
FIXTURES: dict[str, list[str]] = {
    "rounds": ["prune", "DENSE", *PRUNE],
    "bias_fold": ["prune", "DENSE", *PRUNE, "--fold-bias"],
    "certificate": ["prune", "DENSE", "--method", "pfp", "--target-macs", "0.1"],
    "compact_columns": [
        "spp",
        "BASE",
        "--granularity",
        "column",
        "--epochs",
        "2",
        "--interval",
        "1",
    ],
    "spp": ["spp", "BASE", "--granularity", "channel", "--epochs", "2", "--interval", "1"],
    "diverse_groups": ["sgcnn", "BASE", "--epochs", "3", "--step", "0.3", "--groups", "2"],
    "sgcnn": ["sgcnn", "BASE", "--epochs", "3", "--step", "0.3", "--groups", "2", "--fc"],
    "taylor_gradual": ["taylor-gradual", "BASE", "--epochs", "2", "--interval", "2"],
    "campfire_window": ["campfire", "BASE", "--granularity", "window", "--sparsity", "0.5"],
    "campfire_kernel": ["campfire", "BASE", "--granularity", "kernel", "--sparsity", "0.5"],
    "campfire_filter": ["campfire", "BASE", "--granularity", "filter", "--sparsity", "0.5"],
}
CAMPFIRE = ["--epochs", "2", "--interval", "2"]


def cli(args: list[str]) -> None:
    print("secateurs", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "secateurs", *args], check=True, env=dict(os.environ))


def make(out: Path, work: Path) -> None:
    dense = work / "dense" / "model"
    if not dense.exists():
        training = ["--model", "resnet20", "--epochs", "1", "--padding", "1", "--no-flip"]
        cli(["train", *training, *DIGITS, "--out", str(work / "dense")])
    for name, args in FIXTURES.items():
        target = out / name
        if (target / "manifest.json").exists():
            continue
        command, model, *rest = args
        model_dir = dense if model == "DENSE" else out / BASE
        extra = CAMPFIRE if command == "campfire" else []
        run = work / name
        if run.exists():
            shutil.rmtree(run)
        cli([command, str(model_dir), *rest, *extra, *DIGITS, *UNTIMED, "-o", str(run)])
        keep(run, target)
    legacy_history(out / BASE, out / "history")
    for target in sorted(p.parent for p in out.glob("*/manifest.json")):
        save_logits(target)


def keep(run: Path, target: Path) -> None:
    """The run's model and any side files it wrote (Campfire's window.safetensors)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in run.iterdir():
        if path.is_file() and (path.suffix == ".safetensors" or path.name == "manifest.json"):
            shutil.copy(path, target / path.name)


def legacy_history(rounds: Path, target: Path) -> None:
    """The very old manifest: ``pruning`` = {"history": one Torch-Pruning history}."""
    if (target / "manifest.json").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(rounds / "model.safetensors", target / "model.safetensors")
    manifest = json.loads((rounds / "manifest.json").read_text())
    (history,) = manifest["pruning"]["rounds"]
    manifest["pruning"] = {"method": manifest["pruning"]["method"], "history": history}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def save_logits(directory: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from secateurs.store import load_model

    model, manifest = load_model(directory)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(2, *manifest.input_size, generator=generator)
    with torch.no_grad():
        logits = model(inputs)
    save_file({"input": inputs, "logits": logits.contiguous()}, directory / "logits.safetensors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--work", type=Path, default=Path("/tmp/secateurs-fixtures"))
    args = parser.parse_args()
    make(args.out, args.work)


if __name__ == "__main__":
    main()
