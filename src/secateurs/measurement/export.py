"""Exporting a saved model for deployment: BatchNorm folded into the convolutions before it,
a dynamic batch dimension, the graph checked by onnx's checker, and onnxruntime's outputs
checked against PyTorch's on real images before the file is written. A failed check writes
nothing and says why. Optionally an int8 copy, quantised statically by onnxruntime on
calibration images, with its top-1 and latency beside fp32's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from secateurs.errors import SecateursError, first_line
from secateurs.measurement.onnx_runtime import export_onnx, onnx_session

log = logging.getLogger(__name__)
TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| / max |PyTorch| on the check images


@dataclass
class Export:
    """What was written and what was checked."""

    path: Path
    folded_batchnorms: int
    max_rel_diff: float
    check_images: int
    int8_path: Path | None = None
    figures: dict[str, dict[str, float]] = field(default_factory=dict)  # fp32/int8: top1, ms


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``model`` (eval mode) with every BatchNorm that follows a convolution or linear
    layer folded into its weights (torch.fx's fuser); a model torch.fx cannot trace is exported
    unfolded (onnxruntime folds at load time anyway), with a warning."""
    from torch.fx.experimental.optimization import fuse

    before = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    try:
        folded = fuse(model.eval(), inplace=False)
    except Exception as error:  # torch.fx raises many types on untraceable code
        log.warning("BatchNorm not folded: torch.fx cannot trace the model (%s)", first_line(error))
        return model.eval(), 0
    after = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    return folded.eval(), before - after


def check_graph(graph: bytes) -> None:
    """onnx's checker on the exported graph; its complaint is one line."""
    try:
        import onnx
    except ImportError:
        raise SecateursError("onnx is not installed: pip install 'secateurs[onnx]'") from None

    try:
        onnx.checker.check_model(onnx.load_from_string(graph))
    except onnx.checker.ValidationError as error:
        raise SecateursError(f"the exported graph is not valid ONNX: {first_line(error)}") from None


def max_relative_difference(model: nn.Module, graph: bytes, images: torch.Tensor) -> float:
    """max |onnxruntime - PyTorch| / max |PyTorch| on ``images``."""
    with torch.no_grad():
        expected = model.eval()(images).numpy()
    got = onnx_session(graph, 1).run(None, {"images": images.numpy()})[0]
    return float(np.abs(got - expected).max() / max(float(np.abs(expected).max()), 1e-30))


def write_checked(
    model: nn.Module, input_size: Sequence[int], images: torch.Tensor, path: Path
) -> Export:
    """Fold, export, check (graph and outputs), then write ``path`` atomically."""
    folded, count = fold_batchnorm(model)
    graph = export_onnx(folded, input_size)
    check_graph(graph)
    difference = max_relative_difference(model, graph, images)
    if not difference <= TOLERANCE:  # NaN included
        raise SecateursError(
            f"the exported model differs from PyTorch's by {difference:.2e} (max relative, "
            f"tolerance {TOLERANCE:g}) on {len(images)} images: nothing written"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(graph)
    os.replace(temporary, path)
    return Export(path, count, difference, len(images))


def quantize_int8(source: Path, target: Path, batches: Iterator[np.ndarray]) -> None:
    """onnxruntime's static quantisation (QDQ, per-channel weights) calibrated on ``batches``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(batches, None)
            return None if batch is None else {"images": batch}

    prepared = target.with_name(target.stem + ".prep.onnx")
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
        )
    except Exception as error:  # onnxruntime's quantiser raises many types
        target.unlink(missing_ok=True)
        raise SecateursError(f"int8 quantisation failed: {first_line(error)}") from None
    finally:
        prepared.unlink(missing_ok=True)
