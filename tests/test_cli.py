"""The ``secateurs`` command: listing, argument errors as one line, and train -> eval -> measure
end to end, with eval and measure reading the saved model in a new process."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hand_counts import RESNET20_MACS, RESNET20_PARAMS
from secateurs.cli.main import build_parser, main
from secateurs.models import list_models


def command_names() -> list[str]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(commands.choices)


def test_models_lists_the_zoo(capsys) -> None:
    assert main(["models"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == list_models()
    assert "resnet20" in names
    assert main(["models", "resnet*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["resnet110", "resnet20", "resnet32", "resnet56"]


@pytest.mark.parametrize("command", command_names())
def test_help_has_an_example(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "example" in capsys.readouterr().out


def test_train_help_shows_the_real_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "epochs to train [40]" in out
    assert "(default: None)" not in out


def test_train_flags_reach_the_config(monkeypatch, capsys) -> None:
    import secateurs.cli.train_command as train_command

    seen = {}

    def fake_training(config, out, resume):
        seen["config"] = config
        return {"top1": 0.0, "top5": 0.0}

    monkeypatch.setattr(train_command, "run_training", fake_training)
    argv = ["train", "--out", "x", "--cutout", "8", "--alternate-flip", "--lr", "0.2"]
    distil = ["--teacher", "t", "--distill-weight", "0.5", "--distill-temperature", "2"]
    assert main([*argv, "--decay-norm", *distil, "--teacher-flip"]) == 0
    config = seen["config"]
    assert (config.cutout, config.alternate_flip, config.flip, config.lr) == (8, True, True, 0.2)
    assert config.decay_norm is True
    assert (config.teacher, config.distill_weight, config.distill_temperature) == (["t"], 0.5, 2.0)
    assert (config.teacher_flip, config.teacher_offline) == (True, False)
    assert main([*argv, "--teacher", "a", "b", "--teacher-offline"]) == 0
    assert (seen["config"].teacher, seen["config"].teacher_offline) == (["a", "b"], True)
    assert main(["train", "--out", "x", "--no-flip"]) == 0
    assert (seen["config"].flip, seen["config"].alternate_flip, seen["config"].cutout) == (
        False,
        False,
        0,
    )
    assert seen["config"].decay_norm is False
    assert (seen["config"].teacher, seen["config"].teacher_flip) == ([], False)


@pytest.mark.parametrize(
    "argv",
    [
        ["models", "--bogus"],  # unknown flag
        ["train", "--model", "resnet20"],  # missing --out
        ["train", "--epochs", "many", "--out", "x"],  # not a number
        ["frobnicate"],  # unknown command
        [],  # no command
        # counts that must be whole and positive are refused before any work
        ["train", "--out", "x", "--batch-size", "0"],
        ["train", "--out", "x", "--threads", "-1"],
        ["train", "--out", "x", "--train-subset", "-1300"],
        ["train", "--out", "x", "--cutout", "-2"],
        ["eval", "m", "--data", "digits", "--batch-size", "0"],
        ["eval", "m", "--data", "digits", "--subset", "-5"],
        ["measure", "m", "--threads", "0"],
        ["measure", "m", "--repeats", "0"],
        ["measure", "m", "--batch-sizes", "1", "0"],
        ["prune", "m", "--method", "l1", "--target-macs", "0.5", "-o", "x", "--batch-size", "0"],
        ["prune", "m", "--method", "l1", "--target-macs", "0.5", "-o", "x", "--threads", "0"],
        ["prune", "m", "--method", "l1", "--target-macs", "0.5", "-o", "x", "--steps", "1.5"],
        ["spp", "m", "--data", "digits", "-o", "x", "--batch-size", "0"],
        ["demo", "--epochs", "0"],
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("secateurs") and "error:" in lines[0]
    assert captured.out == ""


def test_eval_of_a_missing_model_in_a_new_process(tmp_path: Path, run_secateurs) -> None:
    missing = tmp_path / "no-model"
    done = run_secateurs("eval", missing, "--data", "digits")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"secateurs: error: no such model directory: {missing}"]
    assert done.stdout == ""


def test_existing_run_without_resume_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert main(["train", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "pass --resume" in err[0]


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("secateurs: error: ")
    return lines[0]


def test_bad_run_directories_are_one_line(tmp_path: Path, capsys) -> None:
    # --resume where there is nothing to resume (a typo in --out) does not start a new run
    empty = tmp_path / "typo"
    assert main(["train", "--out", str(empty), "--resume"]) == 2
    assert "nothing to resume in" in one_error_line(capsys)
    assert not empty.exists()

    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    assert main(["train", "--out", str(afile)]) == 2
    assert "is a file" in one_error_line(capsys)
    argv = ["prune", str(tmp_path), "--method", "l1", "--target-macs", "0.5", "-o", str(afile)]
    assert main(argv) == 2
    assert "is a file" in one_error_line(capsys)
    assert main(["demo", "--out", str(afile)]) == 2
    assert "is a file" in one_error_line(capsys)


def test_unreadable_checkpoints_and_configs_are_one_line(tmp_path: Path, capsys) -> None:
    import torch

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")  # an empty file: the loader's error has no text
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert "is not a secateurs checkpoint" in one_error_line(capsys)

    (run / "config.json").write_text('{"epochs": 1, "bogus": 2}')
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert "unknown config keys: bogus" in one_error_line(capsys)
    (run / "config.json").write_text('{"epochs": 1, "batch_si')  # truncated
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert "cannot read" in one_error_line(capsys)

    # a checkpoint torch can read that is not a training state: a plain dict, a tensor
    config = {"epochs": 1, "data": "digits", "train_subset": 64, "batch_size": 32}
    (run / "config.json").write_text(json.dumps(config))
    for state in ({"model": {}}, torch.zeros(3)):
        torch.save(state, run / "checkpoint.pt")
        assert main(["train", "--out", str(run), "--resume"]) == 2
        assert "does not hold the training state of this run" in one_error_line(capsys)


@pytest.mark.slow
def test_train_eval_measure_cifar10(tmp_path: Path, cifar10_root: Path, capsys, run_secateurs):
    out = tmp_path / "run"
    argv = ["train", "--model", "resnet20", "--data", str(cifar10_root), "--epochs", "1"]
    argv += ["--train-subset", "1000", "--test-subset", "500", "--threads", "1"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 1

    # a new process reads the saved model and evaluates the same 500 test images
    done = run_secateurs("eval", out / "model", "--data", cifar10_root, "--subset", 500, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n"] == 500
    assert abs(result["top1"] - summary["top1"]) < 1e-9
    assert abs(result["top5"] - summary["top5"]) < 1e-9

    done = run_secateurs("measure", out / "model", "--repeats", "3", "--threads", "1", "--json")
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    assert measured["macs"] == RESNET20_MACS  # resnet20 on 3x32x32, derived in hand_counts
    assert measured["params"] == RESNET20_PARAMS
    assert sorted(measured["latency_ms"]) == ["1", "64"]
    assert 0 < measured["latency_ms"]["1"] < measured["latency_ms"]["64"]
    assert measured["threads"] == 1
    assert measured["machine"]["threads"] == 1 and measured["machine"]["cpu"]


def write_mixed_tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("a", "b", "c"):
            for index in range(4):
                size = (10, 12) if index == 0 else (8, 8)  # mixed sizes: needs --image-size
                array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                path = root / split / name / f"{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(path)


def test_eval_reads_images_as_training_did(tmp_path: Path, capsys) -> None:
    data, out = tmp_path / "data", tmp_path / "run"
    write_mixed_tree(data)
    # 32 is CIFAR's size: eval must still resize, because training did
    argv = ["train", "--model", "resnet20", "--data", str(data), "--image-size", "32"]
    argv += ["--epochs", "1", "--batch-size", "4", "--threads", "1", "--out", str(out), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert json.loads((out / "model" / "manifest.json").read_text())["image_size"] == 32
    assert main(["eval", str(out / "model"), "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 12
    assert result["top1"] == summary["top1"]


def test_resume_says_which_flags_the_saved_config_overrules(tmp_path: Path, caplog) -> None:
    run = tmp_path / "run"
    argv = ["train", "--data", "digits", "--train-subset", "64", "--test-subset", "32"]
    argv += ["--batch-size", "32", "--threads", "1", "--epochs", "1", "--out", str(run)]
    assert main(argv) == 0
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--resume"]) == 0  # the same flags: nothing to say
        assert not caplog.records
        assert main([*argv[:-4], "--epochs", "3", "--out", str(run), "--resume"]) == 0
    (warning,) = [record.getMessage() for record in caplog.records]
    assert warning == f"--resume keeps epochs = 1 from {run}/config.json; ignoring --epochs 3"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_demo_says_when_it_reuses_a_model_trained_for_other_epochs(
    tmp_path: Path, caplog, monkeypatch
) -> None:
    from secateurs import demo
    from secateurs.train.config import TrainConfig

    train = tmp_path / "demo" / "train"
    train.mkdir(parents=True)
    (train / "checkpoint.pt").write_bytes(b"")
    (train / "config.json").write_text(json.dumps(TrainConfig(epochs=1).to_dict()))

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(demo, "run_training", stop)
    with caplog.at_level(logging.WARNING), pytest.raises(Stop):
        demo.run_demo(tmp_path / "demo", epochs=2)
    (warning,) = [record.getMessage() for record in caplog.records]
    assert warning.endswith(
        "holds a demo trained for 1 epochs: reusing it (another --out trains 2)"
    )


def test_every_flag_of_every_command_says_what_it_does() -> None:
    import argparse

    from secateurs.cli.main import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    silent = [
        f"{name} {action.option_strings or action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not (action.help or "").strip()
    ]
    assert silent == []
    assert sorted(commands.choices) == sorted(
        [
            "import",
            "train",
            "eval",
            "measure",
            "export",
            "prune",
            "spp",
            "sgcnn",
            "taylor-gradual",
            "campfire",
            "robustness",
            "compare",
            "models",
            "methods",
            "demo",
        ]
    )


def test_under_torchrun_only_rank_0_logs_the_run() -> None:
    """torchrun sets RANK: rank 0 logs at info (debug with -v), the other ranks warnings only."""
    import logging

    from secateurs.cli.main import log_level

    assert log_level(False, "0") == logging.INFO
    assert log_level(True, "0") == logging.DEBUG
    assert log_level(False, "") == logging.INFO
    assert log_level(False, "1") == logging.WARNING
    assert log_level(True, "3") == logging.WARNING
