"""What every run takes: the model, the output directory, data, batches, seeds, threads and how
latency is timed. A run kind's job (:class:`~secateurs.runs.prune_run.PruneJob`, ...) adds its
own options to these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from secateurs.device import device_check
from secateurs.errors import SecateursError
from secateurs.measurement.backends import backend_names
from secateurs.options import check_fields, count, option, positive_int

BACKENDS = tuple(backend_names())  # the one registry: measurement/backends/


def _backends(values: tuple[str, ...]) -> str | None:
    unknown = [value for value in values if value not in BACKENDS]
    return f"knows {', '.join(BACKENDS)}, not {', '.join(unknown)}" if unknown else None


@dataclass(kw_only=True)
class RunJob:
    """The options every run kind shares."""

    model: Path = option(help="a saved model directory", positional=True, parse=Path)
    out: Path = option(help="output directory (must be new, or --resume)", flags=("-o", "--out"))
    data: str | None = option(
        None, help="data set root (ImageFolder train/ and test/, cifar-10-batches-py, or digits)"
    )
    image_size: int | None = option(
        None, help="read images at this size (default: the model's)", cli=False
    )
    batch_size: int = count(128, "images per training and scoring batch")
    train_subset: int | None = count(None, "use this many training images (a fixed draw)")
    test_subset: int | None = count(None, "evaluate on this many test images (a fixed draw)")
    threads: int = count(2, "CPU threads for training, evaluation and timing")
    latency_repeats: int = count(
        30,
        "timed runs per model, batch size and backend (0: no timing, e.g. on a busy machine)",
        least=0,
    )
    latency_batches: tuple[int, ...] = option(
        (1, 64), help="batch sizes to time", parse=positive_int, nargs="+", convert=tuple
    )
    latency_backends: tuple[str, ...] = option(
        BACKENDS,
        help="where to time the models: PyTorch eager and the ONNX graph in onnxruntime",
        nargs="+",
        choices=BACKENDS,
        convert=tuple,
        check=_backends,
    )
    seed: int = option(
        0, help="seed of every random choice (data draws, methods, training)", parse=int
    )
    resume: bool = option(False, help="continue an interrupted run in OUT")
    device: str = option(
        "cpu",
        help="where to compute: cpu, cuda, cuda:N or mps (under torchrun, cuda: each process's "
        "own GPU, with NCCL)",
        check=device_check,
    )

    def __post_init__(self) -> None:
        self.model, self.out = Path(self.model), Path(self.out)
        self.latency_batches = tuple(self.latency_batches)
        self.latency_backends = tuple(self.latency_backends)

    def check(self) -> None:
        """Every option's own check; run kinds add the checks that tie options together."""
        check_fields(self)
        if self.out.exists() and not self.out.is_dir():
            raise SecateursError(f"{self.out} is a file; -o takes a directory")
