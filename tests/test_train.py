"""Training: schedules, configuration precedence, and exact resumption of an interrupted run."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from secateurs.data import LabelledData
from secateurs.data.digits import read_digits
from secateurs.errors import SecateursError
from secateurs.runs.train_run import run_training
from secateurs.store import load_model
from secateurs.train.callback import Callback
from secateurs.train.checkpoint import load_checkpoint
from secateurs.train.config import TrainConfig, load_config
from secateurs.train.curves import CURVES_FILE, training_figure
from secateurs.train.layout import channels_last_crashes
from secateurs.train.schedule import warmup_cosine, warmup_step
from secateurs.train.trainer import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    Trainer,
    parameter_groups,
    weights_digest,
)

TIMING = ("epoch_seconds", "images_per_s")


# -- schedules ----------------------------------------------------------------------------------
def test_warmup_cosine_values() -> None:
    total, warmup = 110, 10
    assert warmup_cosine(0, total, warmup) == pytest.approx(0.1)  # first step: 1/warmup
    assert warmup_cosine(4, total, warmup) == pytest.approx(0.5)
    assert warmup_cosine(9, total, warmup) == pytest.approx(1.0)  # last warm-up step
    assert warmup_cosine(10, total, warmup) == pytest.approx(1.0)  # cosine starts at the peak
    assert warmup_cosine(60, total, warmup) == pytest.approx(0.5)  # cosine midpoint
    assert warmup_cosine(35, total, warmup) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine(110, total, warmup) == pytest.approx(0.0, abs=1e-12)  # the end
    assert warmup_cosine(200, total, warmup) == pytest.approx(0.0, abs=1e-12)  # stays there
    assert warmup_cosine(0, 100, 0) == 1.0  # no warm-up


def test_warmup_step_values() -> None:
    def factor(step: int) -> float:
        return warmup_step(step, 100, 10, [0.5, 0.75], 0.1)

    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0)
    assert factor(49) == pytest.approx(1.0)
    assert factor(50) == pytest.approx(0.1)  # first milestone: 0.5 x 100 steps
    assert factor(74) == pytest.approx(0.1)
    assert factor(75) == pytest.approx(0.01)  # second milestone
    assert factor(99) == pytest.approx(0.01)


# -- configuration ------------------------------------------------------------------------------
def test_weight_decay_reaches_batchnorm_only_with_decay_norm() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2)
    )
    model[1].weight.requires_grad_(False)  # frozen parameters go nowhere
    by_decay = {
        flag: {group["weight_decay"]: sum(p.numel() for p in group["params"]) for group in groups}
        for flag in (False, True)
        for groups in [parameter_groups(model, 5e-4, decay_norm=flag)]
    }
    # conv 108 + linear weight 8 decayed; BN bias 4 + linear bias 2 not, unless decay_norm
    assert by_decay[False] == {5e-4: 116, 0.0: 6}
    assert by_decay[True] == {5e-4: 122, 0.0: 0}


def test_config_precedence(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('epochs = 7\nlr = 0.2\nschedule = "step"\nmilestones = [0.3]\n')
    config = load_config(path, {"lr": 0.3, "epochs": None, "batch_size": 32})
    assert config.epochs == 7  # file over default, and a None override is "not given"
    assert config.lr == 0.3  # override over file
    assert config.batch_size == 32  # override over default
    assert config.schedule == "step" and config.milestones == [0.3]
    assert config.momentum == TrainConfig().momentum == 0.9  # default
    assert load_config(None, {}) == TrainConfig()


def test_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("epochs = 3\nlearning_rate = 0.1\nbatch-size = 3\n")
    with pytest.raises(SecateursError, match="unknown config keys: batch-size, learning_rate"):
        load_config(path, {})
    with pytest.raises(SecateursError, match="unknown config keys: colour"):
        load_config(None, {"colour": "blue"})
    path.write_text("epochs = = 3\n")
    with pytest.raises(SecateursError, match=f"{path} is not valid TOML"):
        load_config(path, {})
    with pytest.raises(SecateursError, match="cannot read config"):
        load_config(tmp_path / "absent.toml", {})
    with pytest.raises(SecateursError, match="epochs must be at least 1"):
        load_config(None, {"epochs": 0})
    path.write_text('epochs = "40"\n')
    with pytest.raises(SecateursError, match="epochs must be int, not '40'"):
        load_config(path, {})
    path.write_text("epochs = 1.5\n")  # not rounded to 1 or 2
    with pytest.raises(SecateursError, match=r"epochs must be int, not 1\.5"):
        load_config(path, {})
    path.write_text("lr = 1\nlabel_smoothing = 0\n")  # an integer is a fine float
    assert load_config(path, {}).lr == 1
    path.write_bytes(b"\xff\xfe epochs")
    with pytest.raises(SecateursError, match="is not a text"):
        load_config(path, {})
    for key, value, message in [
        ("momentum", -1.0, "momentum must be in"),
        ("weight_decay", -1e-4, "weight decay must be >= 0"),
        ("threads", 0, "threads must be at least 1"),
        ("train_subset", -5, "train subset must be at least 1"),
        ("eval_batch_size", 0, "eval batch size must be at least 1"),
        ("channels_last", 1, "channels_last must be bool"),
    ]:
        with pytest.raises(SecateursError, match=message):
            load_config(None, {key: value})
    with pytest.raises(SecateursError, match="alternating flips need flips"):
        load_config(None, {"alternate_flip": True, "flip": False})  # not silently unflipped
    with pytest.raises(SecateursError, match="schedule must be"):
        load_config(None, {"schedule": "linear"})


# -- resuming -----------------------------------------------------------------------------------
def small_config() -> TrainConfig:
    return TrainConfig(
        model="resnet20",
        data="digits",
        epochs=3,
        batch_size=64,
        deterministic=True,
        threads=1,
        train_subset=256,
        test_subset=64,
    )


class Interrupt(Callback):
    """Raises KeyboardInterrupt (like Ctrl-C) at the first step of epoch ``at_epoch + 1``, and
    counts the steps this process trained (a resumed run must not train its epochs again)."""

    def __init__(self, at_epoch: int | None) -> None:
        self.at_epoch = at_epoch
        self.steps = 0

    def before_step(self, trainer) -> None:
        if trainer.epoch == self.at_epoch:
            raise KeyboardInterrupt
        self.steps += 1


def metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / METRICS_FILE).read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """An uninterrupted 3-epoch run."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    try:
        summary = run_training(small_config(), run_dir, callbacks=[Interrupt(None)])
    finally:
        torch.use_deterministic_algorithms(False)
    return run_dir, summary


def test_resumed_run_is_bitwise_identical(
    tmp_path: Path, finished_run, caplog: pytest.LogCaptureFixture
) -> None:
    run_a, summary_a = finished_run
    run_b = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run_training(small_config(), run_b, callbacks=[Interrupt(1)])
    assert load_checkpoint(run_b / CHECKPOINT_FILE)["epoch"] == 1
    assert len(metrics(run_b)) == 1
    assert not (run_b / "model").exists()

    # the checkpoint holds the callback's state: resuming without the callback is refused
    before = (run_b / CHECKPOINT_FILE).read_bytes()
    with pytest.raises(SecateursError, match="holds the state of 1 callbacks"):
        run_training(small_config(), run_b, resume=True)
    assert (run_b / CHECKPOINT_FILE).read_bytes() == before

    # a crash after an epoch's metrics line but before its checkpoint left a line the
    # checkpoint does not know: resuming rewrites the file from the checkpoint's history
    with (run_b / "metrics.jsonl").open("a") as file:
        file.write(json.dumps({**metrics(run_b)[0], "epoch": 2}) + "\n")
    with caplog.at_level(logging.INFO, logger="secateurs.train.trainer"):
        summary_b = run_training(small_config(), run_b, resume=True, callbacks=[Interrupt(None)])
    assert [record["epoch"] for record in metrics(run_b)] == [1, 2, 3]
    # the resumed process logs epochs 2 and 3, with the time left before the last
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["2/3", "3/3"]
    assert [line.endswith(" to go") for line in epochs] == [True, False]

    model_a, manifest_a = load_model(run_a / "model")
    model_b, manifest_b = load_model(run_b / "model")
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name
    assert weights_digest(model_a) == weights_digest(model_b)
    assert summary_a["rank_weight_digests"] == summary_b["rank_weight_digests"]
    assert summary_a["rank_weight_digests"] == [weights_digest(model_a)]
    assert metrics(run_a) == metrics(run_b)
    assert summary_b["epochs"] == 3 and summary_b["top1"] == summary_a["top1"]
    assert manifest_a.metrics == manifest_b.metrics
    # 4 steps an epoch, warm-up of one epoch, cosine to zero over the 8 steps after it
    assert [m["lr"] for m in metrics(run_a)] == pytest.approx([0.1, 0.05, 0.0], abs=1e-12)
    assert [m["epoch"] for m in metrics(run_a)] == [1, 2, 3]


def test_the_gpus_generators_are_checkpointed_and_restored(tmp_path: Path, monkeypatch) -> None:
    # no GPU here: a stand-in for torch.cuda's generator functions, with one state per "GPU"
    states = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5], dtype=torch.uint8)]
    restored: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [t.clone() for t in states])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)
    run_dir = tmp_path / "run"
    try:
        with pytest.raises(KeyboardInterrupt):
            run_training(small_config(), run_dir, callbacks=[Interrupt(1)])
        saved = load_checkpoint(run_dir / CHECKPOINT_FILE)["rng"]["cuda"]
        assert [t.tolist() for t in saved] == [[1, 2, 3], [4, 5]]
        run_training(small_config(), run_dir, resume=True, callbacks=[Interrupt(None)])
    finally:
        torch.use_deterministic_algorithms(False)
    assert [t.tolist() for t in restored] == [[1, 2, 3], [4, 5]]


def test_existing_run_needs_resume(finished_run) -> None:
    run_dir, _ = finished_run
    checkpoint = run_dir / CHECKPOINT_FILE
    before = (checkpoint.read_bytes(), checkpoint.stat().st_mtime_ns)
    config_before = (run_dir / "config.json").read_text()
    with pytest.raises(SecateursError, match="already holds a run; pass --resume"):
        run_training(small_config(), run_dir)
    assert (checkpoint.read_bytes(), checkpoint.stat().st_mtime_ns) == before
    assert (run_dir / "config.json").read_text() == config_before


def test_run_directory_contents(finished_run) -> None:
    run_dir, summary = finished_run
    assert json.loads((run_dir / "config.json").read_text()) == small_config().to_dict()
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    _, manifest = load_model(run_dir / "model")
    assert manifest.architecture == "resnet20"
    assert manifest.arguments == {"num_classes": 10, "in_channels": 1}
    assert manifest.input_size == [1, 8, 8]
    assert manifest.metrics["top1"] == summary["top1"]
    history = metrics(run_dir)
    assert manifest.metrics["top1"] == history[-1]["test_top1"]
    assert all(0 < m["test_n"] == 64 for m in history)
    assert (run_dir / CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_plot_the_error_of_each_run_and_the_raw_weights_dotted() -> None:
    plain = [{"epoch": e, "test_top1": t, "train_loss": 1 / e} for e, t in ((1, 60.0), (2, 80.0))]
    ema = [
        {"epoch": 1, "test_top1": 70.0, "test_raw_top1": 50.0, "train_loss": 2.0},
        {"epoch": 2, "test_top1": 100.0, "test_raw_top1": 90.0, "train_loss": 1.0},
    ]
    figure = training_figure({"plain": plain, "ema": ema}, target=89.5, references={"x": 95.0})
    error, loss = figure.axes
    curves = [(line.get_linestyle(), list(line.get_ydata())) for line in error.get_lines()]
    assert curves[:3] == [("-", [40.0, 20.0]), ("-", [30.0, 0.0]), (":", [50.0, 10.0])]
    assert [list(line.get_ydata()) for line in error.get_lines()[3:]] == [[10.5] * 2, [5.0] * 2]
    assert [list(line.get_ydata()) for line in loss.get_lines()] == [[1.0, 0.5], [2.0, 1.0]]
    assert error.get_yscale() == "log"  # the zero error of 100% top-1 is masked, not an error


# -- weight averaging ---------------------------------------------------------------------------
class Recorder(Callback):
    """Keeps a copy of one weight and one BatchNorm statistic after every optimizer step."""

    def __init__(self, weight: str, statistic: str) -> None:
        self.names = (weight, statistic)
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def after_step(self, trainer) -> None:
        state = trainer.model.state_dict()
        self.seen.append(tuple(state[name].clone() for name in self.names))


def test_ema_is_the_average_of_every_step_and_is_what_the_run_saves(tmp_path: Path) -> None:
    config = TrainConfig(**{**small_config().to_dict(), "ema_decay": 0.5})
    recorder = Recorder("conv1.weight", "bn1.running_mean")
    try:
        summary = run_training(config, tmp_path / "ema", callbacks=[recorder])
    finally:
        torch.use_deterministic_algorithms(False)
    assert len(recorder.seen) == 12  # 3 epochs of 4 steps
    # by hand: the first step's weights, then e <- 0.5 e + 0.5 w after every later step
    expected = [tensor.clone() for tensor in recorder.seen[0]]
    for step in recorder.seen[1:]:
        expected = [0.5 * e + 0.5 * w for e, w in zip(expected, step, strict=True)]
    saved, _ = load_model(tmp_path / "ema" / "model")
    state = saved.state_dict()
    torch.testing.assert_close(state["conv1.weight"], expected[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(state["bn1.running_mean"], expected[1], rtol=1e-6, atol=1e-7)
    raw = load_checkpoint(tmp_path / "ema" / CHECKPOINT_FILE)["model"]
    assert not torch.allclose(raw["conv1.weight"], state["conv1.weight"])
    history = metrics(tmp_path / "ema")
    assert summary["top1"] == history[-1]["test_top1"]  # the average's accuracy
    assert all(0 <= m["test_raw_top1"] <= 100 for m in history)


@pytest.mark.slow  # three training runs
def test_ema_run_resumes_bitwise(tmp_path: Path) -> None:
    config = TrainConfig(**{**small_config().to_dict(), "ema_decay": 0.9})
    try:
        uninterrupted, interrupted, resumed = Interrupt(None), Interrupt(1), Interrupt(None)
        run_training(config, tmp_path / "a", callbacks=[uninterrupted])
        with pytest.raises(KeyboardInterrupt):
            run_training(config, tmp_path / "b", callbacks=[interrupted])
        run_training(config, tmp_path / "b", resume=True, callbacks=[resumed])
    finally:
        torch.use_deterministic_algorithms(False)
    # 3 epochs of 4 steps: the resumed process trained epochs 2 and 3 only (a restart from
    # scratch would also end on the same weights)
    assert (uninterrupted.steps, interrupted.steps, resumed.steps) == (12, 4, 8)
    model_a, _ = load_model(tmp_path / "a" / "model")
    model_b, _ = load_model(tmp_path / "b" / "model")
    assert weights_digest(model_a) == weights_digest(model_b)
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


def test_ema_decay_must_be_below_one() -> None:
    with pytest.raises(SecateursError, match="EMA decay must be in"):
        load_config(None, {"ema_decay": 1.0})


def test_cutout_and_padding_must_not_be_negative() -> None:
    for key in ("cutout", "padding"):
        with pytest.raises(SecateursError, match="must be >= 0 pixels"):
            load_config(None, {key: -1})
    assert load_config(None, {"cutout": 8, "alternate_flip": True}).cutout == 8


# -- memory layout ------------------------------------------------------------------------------
def shortcut_net(channels: int) -> torch.nn.Module:
    """Stem, then a strided 1x1 convolution like a pruned ResNet's downsampling shortcut."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, channels, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(channels, 16, 1, stride=2),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    )


@pytest.mark.parametrize(("channels", "crashes"), [(7, ["2"]), (8, []), (3, ["2"])])
def test_channels_last_crash_detection(channels: int, crashes: list[str]) -> None:
    assert channels_last_crashes(shortcut_net(channels)) == crashes
    strided_3x3 = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, stride=2))
    assert channels_last_crashes(strided_3x3) == []


@pytest.mark.parametrize(("channels", "expected"), [(7, False), (8, True)])
def test_channels_last_falls_back_to_nchw_where_pytorch_crashes(
    tmp_path: Path, channels: int, expected: bool, caplog: pytest.LogCaptureFixture
) -> None:
    digits = read_digits("test")
    config = TrainConfig(model="x", epochs=1, batch_size=32, channels_last=True)
    trainer = Trainer(
        shortcut_net(channels), LabelledData(digits, digits, [0.5], [0.25]), config, tmp_path
    )
    assert trainer.channels_last is expected
    layout = torch.channels_last if expected else torch.contiguous_format
    assert trainer.train_loader.memory_format == trainer.test_loader.memory_format == layout
    assert ("training in NCHW" in caplog.text) is not expected


# -- data that does not fit ------------------------------------------------------------------
def write_split(root: Path, split: str, size: int) -> None:
    """``root/split/{a,b}/`` with four random RGB PNGs of ``size`` x ``size`` each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / split / name).mkdir(parents=True)
        for index in range(4):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / name / f"{index}.png")


def test_splits_of_different_sizes_are_refused(tmp_path: Path) -> None:
    write_split(tmp_path / "data", "train", 8)
    write_split(tmp_path / "data", "test", 12)
    config = TrainConfig(data=str(tmp_path / "data"), epochs=1, batch_size=4, threads=1)
    with pytest.raises(SecateursError, match=r"train split holds \(3, 8, 8\) images and the test"):
        run_training(config, tmp_path / "run")
    assert not (tmp_path / "run" / "model").exists()


def test_fine_tuning_on_images_of_another_size_is_refused(tmp_path: Path) -> None:
    write_split(tmp_path / "small", "train", 8)
    write_split(tmp_path / "small", "test", 8)
    write_split(tmp_path / "large", "train", 12)
    write_split(tmp_path / "large", "test", 12)
    config = TrainConfig(data=str(tmp_path / "small"), epochs=1, batch_size=4, threads=1)
    run_training(config, tmp_path / "first")
    config = TrainConfig(
        model=str(tmp_path / "first" / "model"),
        data=str(tmp_path / "large"),
        epochs=1,
        batch_size=4,
        threads=1,
    )
    with pytest.raises(
        SecateursError, match=r"takes \(3, 8, 8\) inputs but .* holds \(3, 12, 12\)"
    ):
        run_training(config, tmp_path / "second")


def test_subsets_and_batches_must_hold_an_image() -> None:
    from secateurs.data import BatchLoader

    digits = read_digits("test")
    with pytest.raises(SecateursError, match="a subset needs at least 1 image, not -5"):
        digits.subset(-5)
    assert len(digits.subset(10**6)) == len(digits)  # more than there are: all of them
    with pytest.raises(SecateursError, match="batch size must be at least 1, not 0"):
        BatchLoader(digits, 0, [0.5], [0.5])


def test_a_grayscale_test_split_beside_a_colour_train_split_is_named(tmp_path: Path) -> None:
    from PIL import Image

    write_split(tmp_path / "data", "train", 8)
    for name in ("a", "b"):
        (tmp_path / "data" / "test" / name).mkdir(parents=True)
        Image.new("L", (8, 8), 128).save(tmp_path / "data" / "test" / name / "0.png")
    config = TrainConfig(data=str(tmp_path / "data"), epochs=1, batch_size=4, threads=1)
    with pytest.raises(SecateursError, match=r"\(1, 8, 8\) \(one is grayscale, the other colour\)"):
        run_training(config, tmp_path / "run")
