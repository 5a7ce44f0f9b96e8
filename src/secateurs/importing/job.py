"""The options of ``secateurs import`` (and of :func:`secateurs.import_model`), declared once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from secateurs.errors import SecateursError
from secateurs.options import check_fields, count, option, positive_int


def _input_size(values: tuple[int, ...] | None) -> str | None:
    if values is None or len(values) in (1, 3):
        return None
    return f"takes SIZE (square, the data's channels or 3) or C H W, not {len(values)} numbers"


def _positive_numbers(values: tuple[float, ...] | None) -> str | None:
    if values is None or all(value > 0 for value in values):
        return None
    return f"must be positive, not {list(values)}"


@dataclass(kw_only=True)
class ImportJob:
    """Build a model from torchvision, timm or your own code, load weights trained elsewhere,
    and write an ordinary secateurs model directory."""

    spec: str = option(
        help="torchvision:NAME, timm:NAME, package.module:factory (your code), or a "
        "registered model name",
        positional=True,
    )
    out: Path | None = option(
        None, help="the model directory to write (new or empty)", flags=("-o", "--out"), parse=Path
    )
    weights: Path | None = option(
        None,
        help="safetensors file, or a .pt/.pth state_dict (read with weights_only=True; a "
        "checkpoint's state_dict/model entry is used)",
        parse=Path,
    )
    num_classes: int | None = count(
        None, "outputs of the classifier (default: the data's classes, else the model's own)"
    )
    input_size: tuple[int, ...] | None = option(
        None,
        help="input size: SIZE or C H W (default: the data's, else the model family's)",
        parse=positive_int,
        nargs="+",
        metavar="N",
        convert=tuple,
        check=_input_size,
    )
    mean: tuple[float, ...] | None = option(
        None,
        help="per-channel input mean, on [0, 1] pixels (default: the family's, e.g. ImageNet's "
        "for torchvision; else the data's)",
        parse=float,
        nargs="+",
        convert=tuple,
    )
    std: tuple[float, ...] | None = option(
        None,
        help="per-channel input standard deviation (default as for --mean)",
        parse=float,
        nargs="+",
        convert=tuple,
        check=_positive_numbers,
    )
    data: str | None = option(
        None, help="a data set whose class names (and size) the model takes (see train -h)"
    )
    strict: bool = option(False, help="refuse weights with missing or unexpected keys")

    def check(self) -> None:
        check_fields(self)
        if (self.mean is None) != (self.std is None):
            raise SecateursError("give --mean and --std together")
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise SecateursError("--mean and --std need one number per input channel each")
        if self.out is not None and self.out.exists():
            if not self.out.is_dir():
                raise SecateursError(f"{self.out} is a file; -o takes a directory")
            if any(self.out.iterdir()):
                raise SecateursError(f"{self.out} exists and is not empty; choose another -o")
