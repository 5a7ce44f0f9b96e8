"""Knowledge distillation: the loss by hand, the teacher's flip averaging, ensembles, precomputed
teachers, and what the trainer does with a teacher."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from secateurs.data import Augmentation, BatchLoader, LabelledData
from secateurs.data.digits import read_digits
from secateurs.errors import SecateursError
from secateurs.models import create_model
from secateurs.runs.train_run import load_teacher
from secateurs.store import Manifest, save_model
from secateurs.train.config import TrainConfig
from secateurs.train.distill import (
    Ensemble,
    PrecomputedTeacher,
    Renormalized,
    Teacher,
    distillation_loss,
)
from secateurs.train.trainer import Trainer, weights_digest


def test_distillation_loss_by_hand() -> None:
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax: 3/4, 1/4
    # T = 1: 3/4 ln(3/4 / 1/2) + 1/4 ln(1/4 / 1/2)
    assert distillation_loss(student, teacher, 1.0).item() == pytest.approx(0.1308120, rel=1e-6)
    # T = 2: teacher softmax(ln 3 / 2, 0) = (0.63397, 0.36603); times T^2 = 4
    assert distillation_loss(student, teacher, 2.0).item() == pytest.approx(0.1453631, rel=1e-6)
    assert distillation_loss(teacher, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-7)
    # batch mean: a second, identical row changes nothing
    assert distillation_loss(student.repeat(2, 1), teacher.repeat(2, 1), 1.0).item() == (
        pytest.approx(0.1308120, rel=1e-6)
    )


def test_distillation_gradient_is_temperature_times_probability_gap() -> None:
    """With the T^2 factor, d loss / d student logits = T (p_student - p_teacher) / batch."""
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(4, 5, generator=generator, requires_grad=True)
    teacher = torch.randn(4, 5, generator=generator)
    temperature = 3.0
    distillation_loss(student, teacher, temperature).backward()
    gap = torch.softmax(student.detach() / temperature, 1) - torch.softmax(teacher / temperature, 1)
    torch.testing.assert_close(student.grad, temperature * gap / 4)


def test_teacher_is_frozen_and_flip_averages_mirror_images() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3))
    images = torch.randn(5, 1, 6, 6)
    model(images)  # materialise the lazy layer
    model.train()
    teacher = Teacher(model, flip=True)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    logits = teacher.logits(images)
    expected = (model(images) + model(images.flip(3))) / 2
    torch.testing.assert_close(logits, expected)
    assert not torch.allclose(logits, model(images))  # the mirror image changed something
    torch.testing.assert_close(Teacher(model).logits(images), model(images))


def digits(count: int, labels_seed: int | None = None):
    data = read_digits("train").subset(count, seed=0)
    if labels_seed is not None:  # the same images with scrambled labels
        generator = torch.Generator().manual_seed(labels_seed)
        data.labels = data.labels[torch.randperm(len(data), generator=generator)]
    return data


def train(
    tmp_path: Path,
    name: str,
    teacher: nn.Module | None,
    weight: float,
    labels_seed: int | None = None,
    **settings,
) -> str:
    torch.manual_seed(0)
    config = TrainConfig(
        data="digits", epochs=1, batch_size=32, distill_weight=weight, threads=1, seed=0, **settings
    )
    model = create_model("resnet20", num_classes=10, in_channels=1)
    train_set, test_set = digits(128, labels_seed), digits(32)
    (tmp_path / name).mkdir()
    data = LabelledData(train_set, test_set, [8.0], [4.0])
    trainer = Trainer(model, data, config, tmp_path / name, teacher=teacher)
    trainer.fit()
    return weights_digest(trainer.model)


@pytest.mark.slow  # training runs
def test_trainer_mixes_labels_and_teacher_by_the_weight(tmp_path: Path) -> None:
    torch.manual_seed(1)
    teacher = create_model("resnet20", num_classes=10, in_channels=1)
    alone = train(tmp_path, "alone", None, 0.9)
    # weight 0: the teacher runs but changes nothing, bitwise
    assert train(tmp_path, "w0", teacher, 0.0) == alone
    # weight 1: the labels no longer matter, bitwise; with a teacher the run differs
    taught = train(tmp_path, "w1", teacher, 1.0)
    assert train(tmp_path, "w1-scrambled", teacher, 1.0, labels_seed=3) == taught
    assert taught != alone
    # in between, both count
    half = train(tmp_path, "half", teacher, 0.5)
    assert half != train(tmp_path, "half-scrambled", teacher, 0.5, labels_seed=3)


def test_ensemble_is_the_mean_of_its_members() -> None:
    first, second = nn.Linear(3, 2), nn.Linear(3, 2)
    inputs = torch.randn(4, 3)
    torch.testing.assert_close(
        Ensemble([first, second])(inputs), (first(inputs) + second(inputs)) / 2
    )


def test_precomputed_teacher_looks_up_each_images_logits() -> None:
    """Computed once on the stored images, in order; looked up by index in shuffled batches, it
    gives what the teacher gives on those images (no augmentation here, so the same images)."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=1)
    teacher = Teacher(model, flip=True)
    data = digits(40)
    stored = BatchLoader(data, 16, [8.0], [4.0])
    table = teacher.precompute(stored.indexed(), len(data))
    assert table.shape == (40, 10) and not table.isnan().any()
    precomputed = PrecomputedTeacher(table)
    shuffled = BatchLoader(
        data, 8, [8.0], [4.0], augment=Augmentation(padding=0, flip=False), seed=3
    )
    shuffled.set_epoch(1)
    batches = list(shuffled.indexed())
    assert [int(index[0]) for index, *_ in batches] != list(range(0, 40, 8))  # shuffled
    for index, images, labels in batches:
        torch.testing.assert_close(precomputed.logits(images, index), teacher.logits(images))
        assert torch.equal(labels, data.labels[index])
    with pytest.raises(ValueError, match="indices"):
        precomputed.logits(batches[0][1])
    with pytest.raises(ValueError, match="every image"):
        teacher.precompute(batches[:2], len(data))


@pytest.mark.slow
def test_offline_teacher_in_the_trainer(tmp_path: Path) -> None:
    """Without augmentation the precomputed teacher trains like the live one; with it, the targets
    stay fixed, so the run differs; with weight 1 it is still blind to the labels."""
    torch.manual_seed(1)
    teacher = create_model("resnet20", num_classes=10, in_channels=1)
    still = {"padding": 0, "flip": False}
    live = train(tmp_path, "live", teacher, 1.0, **still)
    assert train(tmp_path, "offline-still", teacher, 1.0, teacher_offline=True, **still) == live
    offline = train(tmp_path, "offline", teacher, 1.0, teacher_offline=True)
    assert offline != train(tmp_path, "live-augmented", teacher, 1.0)
    scrambled = train(tmp_path, "scrambled", teacher, 1.0, 3, teacher_offline=True)
    assert scrambled == offline
    assert offline != train(tmp_path, "alone", None, 1.0)


def test_teacher_config_takes_one_directory_or_several() -> None:
    assert TrainConfig(teacher="a").teacher == ["a"]  # a configuration from before the list
    assert TrainConfig(teacher=None).teacher == []
    assert TrainConfig(teacher=["a", "b"]).teacher == ["a", "b"]
    with pytest.raises(SecateursError, match="offline teacher needs a teacher"):
        TrainConfig(teacher_offline=True).validate()
    with pytest.raises(SecateursError, match="teacher must be model directories"):
        TrainConfig(teacher=5).validate()  # e.g. ``teacher = 5`` in a TOML file


def test_teacher_must_share_classes_and_input(tmp_path: Path) -> None:
    arguments = {"num_classes": 10, "in_channels": 1}
    model = create_model("resnet20", **arguments)

    def manifest(classes: list[str], size: int) -> Manifest:
        return Manifest("resnet20", arguments, classes, [1, size, size], [8.0], [4.0])

    student = manifest([str(i) for i in range(10)], 8)
    save_model(model, tmp_path / "same", student)
    save_model(model, tmp_path / "other", manifest(list("abcdefghij"), 8))
    save_model(model, tmp_path / "bigger", manifest(student.classes, 16))
    assert load_teacher(TrainConfig(), student) is None
    assert isinstance(load_teacher(TrainConfig(teacher=str(tmp_path / "same")), student), nn.Module)
    pair = load_teacher(TrainConfig(teacher=[str(tmp_path / "same")] * 2), student)
    assert isinstance(pair, Ensemble) and len(pair.members) == 2
    with pytest.raises(SecateursError, match="other classes"):
        load_teacher(TrainConfig(teacher=str(tmp_path / "other")), student)
    with pytest.raises(SecateursError, match="inputs of size"):
        load_teacher(TrainConfig(teacher=str(tmp_path / "bigger")), student)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"distill_weight": 1.5}, "distillation weight"),
        ({"distill_weight": -0.1}, "distillation weight"),
        ({"distill_temperature": 0.0}, "temperature must be positive"),
    ],
)
def test_distillation_settings_are_checked(settings: dict, message: str) -> None:
    with pytest.raises(SecateursError, match=message):
        TrainConfig(**settings).validate()


@pytest.mark.slow
def test_run_training_loads_the_teacher_it_names(tmp_path: Path) -> None:
    """``secateurs train --teacher DIR``: the saved teacher reaches the loss. Weight 0 is bitwise
    the run without it; weight 1 ends elsewhere."""
    from secateurs.runs.train_run import run_training

    base = {"data": "digits", "epochs": 1, "batch_size": 64, "threads": 1, "train_subset": 128}
    base["test_subset"] = 32
    plain = run_training(TrainConfig(**base), tmp_path / "plain")
    teacher = str(tmp_path / "plain" / "model")
    silent = run_training(TrainConfig(**base, teacher=teacher, distill_weight=0.0), tmp_path / "w0")
    taught = run_training(TrainConfig(**base, teacher=teacher, distill_weight=1.0), tmp_path / "w1")
    assert silent["rank_weight_digests"] == plain["rank_weight_digests"]
    assert taught["rank_weight_digests"] != plain["rank_weight_digests"]
    saved = json.loads((tmp_path / "w1" / "config.json").read_text())
    assert (saved["teacher"], saved["distill_weight"]) == ([teacher], 1.0)
    # two of them, run once before training: their mean is that model, but its fixed targets
    # ignore the crops, so the run ends elsewhere than the live teacher's
    pair = {"teacher": [teacher, teacher], "teacher_offline": True, "distill_weight": 1.0}
    offline = run_training(TrainConfig(**base, **pair), tmp_path / "pair")
    assert offline["rank_weight_digests"] not in (
        plain["rank_weight_digests"],
        taught["rank_weight_digests"],
    )


def test_a_teacher_normalised_otherwise_sees_its_own_normalisation() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()).eval()
    pixels = torch.rand(2, 3, 5, 5)
    student = ([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])  # the student's mean and std
    teacher = ([0.45, 0.5, 0.35], [0.3, 0.2, 0.22])  # the teacher's

    def normalise(stats: tuple[list[float], list[float]]) -> torch.Tensor:
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in stats)
        return (pixels - mean) / std

    wrapped = Renormalized(model, student, teacher)
    expected = model(normalise(teacher))
    torch.testing.assert_close(wrapped(normalise(student)), expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(model(normalise(student)), expected, atol=1e-3)
