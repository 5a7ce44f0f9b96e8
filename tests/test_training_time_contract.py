"""A training-time method is one class and one decorator: a toy method registered in this file
alone runs end to end through the command line (its own command, built from its options) and
through the Python API, with the same checks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import secateurs
from secateurs.cli.main import main
from secateurs.errors import SecateursError
from secateurs.measurement.latency import LatencySettings
from secateurs.options import count
from secateurs.pruning.graph import OUT, ChannelGraph
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.record import ChannelRounds, ManifestPruning
from secateurs.pruning.surgery import remove_channels
from secateurs.pruning.training_time import (
    Compaction,
    TrainingRun,
    TrainingTimeMethod,
    register_training_time,
    training_time_methods,
    unregister_training_time,
)
from secateurs.report import PruningRecord, read_report
from secateurs.train.callback import Callback

ZEROED = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


class ZeroLastChannels(Callback):
    """Keeps the last ``drop`` channels of every prunable group at zero while training."""

    def __init__(self, drop: int, input_size: Sequence[int]) -> None:
        self.drop, self.input_size = drop, tuple(input_size)
        self.plan = PruningPlan()
        self.graph: ChannelGraph | None = None
        self.steps = 0

    def on_train_start(self, trainer: Any) -> None:
        self.graph = ChannelGraph(trainer.model, self.input_size)
        self.plan = PruningPlan(
            {g.root: list(range(g.size - self.drop, g.size)) for g in self.graph.prunable_groups}
        )
        self._zero()

    def after_step(self, trainer: Any) -> None:
        self.steps += 1
        self._zero()

    def _zero(self) -> None:
        assert self.graph is not None
        with torch.no_grad():
            for group in self.graph.prunable_groups:
                removed = set(self.plan.removals[group.root])
                for member in group.layers(OUT, ZEROED):
                    pairs = zip(member.indices, member.root_indices, strict=True)
                    hits = [i for i, root in pairs if root in removed]
                    for name in ("weight", "bias"):
                        parameter = getattr(member.module, name, None)
                        if parameter is not None:
                            parameter[hits] = 0


@dataclass(kw_only=True)
class ToyOptions:
    drop: int = count(2, "channels taken from the end of every prunable group")


class ToyMethod(TrainingTimeMethod):
    name = "toy-last-channels"
    title = "toy"
    summary = "the last channels of every group held at zero while training, then removed"
    usage = "secateurs toy-last-channels MODEL --data PATH --drop N"
    description = "A toy training-time method, registered by a test."
    Options = ToyOptions

    def __init__(self, drop: int, input_size: Sequence[int]) -> None:
        self._callback = ZeroLastChannels(drop, input_size)

    @classmethod
    def build(cls, options: ToyOptions, run: TrainingRun) -> ToyMethod:
        if options.drop > 8:
            raise SecateursError(f"the toy drops at most 8 channels, not {options.drop}")
        return cls(options.drop, run.input_size)

    def callback(self) -> ZeroLastChannels:
        return self._callback

    def compact(
        self, model: nn.Module, input_size: Sequence[int], timing: LatencySettings
    ) -> Compaction:
        return Compaction(remove_channels(ChannelGraph(model, input_size), self._callback.plan))

    def pruning_record(self, compaction: Compaction) -> PruningRecord:
        return PruningRecord(method=self.name, details={"steps": self._callback.steps})

    def manifest_record(
        self, previous: ManifestPruning | None, compaction: Compaction
    ) -> ManifestPruning:
        rounds = ChannelRounds([compaction.history])
        return ManifestPruning(method=self.name, rounds=rounds).after(previous)


@pytest.fixture
def toy() -> Iterator[type[ToyMethod]]:
    register_training_time(ToyMethod)
    yield ToyMethod
    unregister_training_time(ToyMethod.name)


@pytest.fixture(scope="module")
def trained(digits_model: Path) -> Path:
    return digits_model


def widths(model: nn.Module) -> dict[str, int]:
    return {name: m.out_channels for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def test_a_method_registered_in_a_test_file_runs_through_the_command_line(
    toy: type[ToyMethod], trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "toy-last-channels" in training_time_methods()
    assert "toy-last-channels" in [m["name"] for m in secateurs.list_methods()]
    out = tmp_path / "toy"
    argv = [
        "toy-last-channels", str(trained), "--data", "digits", "--epochs", "1", "--drop", "3",
        "--batch-size", "64", "--threads", "1", "--latency-repeats", "0", "-o", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    model, manifest = secateurs.load(out)  # replayed from JSON, weights from safetensors
    base, _ = secateurs.load(trained)
    before, after = widths(base), widths(model)
    # ResNet-20 on the digits: the stem and every block's first conv lose 3 of their channels
    assert before["conv1"] - after["conv1"] == 3
    assert before["layer2.0.conv1"] - after["layer2.0.conv1"] == 3
    assert manifest.pruning.method == "toy-last-channels"
    report = read_report(out / "report.json")
    # 1,437 training digits (80% of 1,797) // 64 per batch: the last partial batch is dropped
    assert report.pruning.details["steps"] == 22
    assert report.settings.kind == "toy-last-channels"
    config = (out / "config.json").read_text()
    assert '"drop": 3' in config  # the method's option, flat beside the run's


def test_the_same_method_runs_through_the_python_api_with_the_same_checks(
    toy: type[ToyMethod], trained: Path
) -> None:
    model, manifest = secateurs.load(trained)
    data = secateurs.load_data("digits", manifest=manifest, train_subset=256, test_subset=64)
    images = torch.randn(2, *manifest.input_size)
    pruned = secateurs.prune_while_training(
        model, data, method="toy-last-channels", example_input=images, epochs=1, drop=2,
        batch_size=64, threads=1, latency_repeats=0, manifest=manifest,
    )  # fmt: skip
    assert widths(model)["conv1"] - widths(pruned.model)["conv1"] == 2
    assert pruned.achieved < 1.0
    with pytest.raises(SecateursError, match="at most 8 channels, not 9"):
        secateurs.prune_while_training(
            model, data, method="toy-last-channels", example_input=images, epochs=1, drop=9
        )
    with pytest.raises(SecateursError, match=r"--drop must be at least 1, not 0"):
        secateurs.prune_while_training(
            model, data, method="toy-last-channels", example_input=images, epochs=1, drop=0
        )
    with pytest.raises(SecateursError, match="has no option dorp"):
        secateurs.prune_while_training(
            model, data, method="toy-last-channels", example_input=images, epochs=1, dorp=2
        )
