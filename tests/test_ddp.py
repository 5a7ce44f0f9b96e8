"""Distributed training: two CPU processes under torchrun end with identical weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from secateurs.store import load_model
from secateurs.train.trainer import weights_digest


@pytest.mark.slow
def test_two_ranks_end_with_the_same_weights(tmp_path: Path, child_env: dict[str, str]) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "secateurs",
        "train",
        "--model",
        "resnet20",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--train-subset",
        "256",
        "--test-subset",
        "64",
        "--threads",
        "1",
        "--out",
        str(out),
        "--json",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env=child_env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    digests = summary["rank_weight_digests"]
    assert len(digests) == 2
    assert digests[0] == digests[1]  # BatchNorm statistics included
    # only rank 0 prints the summary
    assert [json.loads(line) for line in done.stdout.splitlines()] == [summary]
    # the saved model is the ranks' model
    model, manifest = load_model(out / "model")
    assert weights_digest(model) == digests[0]
    assert manifest.metrics["top1"] == summary["top1"]
    # each rank trained on its half of 256 images, in batches of 32: 4 steps of 64 images
    (record,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert record["epoch"] == 1 and record["test_n"] == 64


RUN_KINDS = {
    # run kind: (its flags, the directory it trains in)
    "prune": (["--method", "l1", "--finetune-epochs", "2"], "finetune"),
    "spp": (["--epochs", "2", "--interval", "1", "--A", "0.25"], "train"),
    "sgcnn": (["--epochs", "2", "--groups", "4", "--scheme", "L", "--step", "0.3"], "train"),
    "campfire": (["--epochs", "2", "--granularity", "kernel", "--interval", "1"], "train"),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(RUN_KINDS))
def test_every_run_kind_trains_with_ddp_and_both_ranks_agree(
    tmp_path: Path, child_env: dict[str, str], kind: str
) -> None:
    from secateurs.report import read_report
    from secateurs.runs.train_run import run_training
    from secateurs.runs.training import RANKS_FILE
    from secateurs.train.config import TrainConfig

    config = TrainConfig(
        data="digits", epochs=1, batch_size=64, train_subset=256, test_subset=64, threads=1
    )
    run_training(config, tmp_path / "base")
    out = tmp_path / "pruned"
    flags, trained_in = RUN_KINDS[kind]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", "-m", "secateurs", kind, str(tmp_path / "base/model")]
    command += [*flags, "--data", "digits"]
    command += ["--batch-size", "64", "--train-subset", "256", "--test-subset", "64"]
    command += ["--threads", "1", "--latency-repeats", "0", "-o", str(out), "--json"]
    done = subprocess.run(
        command, capture_output=True, text=True, env=child_env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    digests = json.loads((out / trained_in / RANKS_FILE).read_text())["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # BatchNorm statistics included
    # the saved model is the ranks' model (training-time runs: before compaction, masked/)
    model, _ = load_model(out if kind == "prune" else out / "masked")
    assert weights_digest(model) == digests[0]
    # only rank 0 reports; 256 images in global batches of 64 (32 per rank): 4 steps an epoch
    assert [json.loads(line) for line in done.stdout.splitlines()] == [read_report(out).to_json()]
    records = [json.loads(line) for line in (out / trained_in / "metrics.jsonl").open()]
    assert [r["epoch"] for r in records] == [1, 2]
