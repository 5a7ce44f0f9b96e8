"""Deployment latency: the model exported to ONNX and timed in onnxruntime on the CPU.

PyTorch eager latency is what a researcher sees; an engineer shipping to a CPU or an edge device
runs an exported graph. Export uses the TorchScript-based exporter (no extra dependencies), with a
dynamic batch dimension; timing is the ``onnxruntime`` backend's, through the one loop of
:mod:`secateurs.measurement.timing` (warm-up, interleaved repeats, median). Every session is made by
:func:`onnx_session`, the one place its thread and spinning settings are set.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from secateurs.errors import SecateursError, first_line
from secateurs.measurement.backends.base import create_backend
from secateurs.measurement.timing import LatencySettings

INTER_OP_THREADS = 1  # operators run one after another (sequential execution)
# Spinning off: without it each session's thread pool busy-waits after a run; with several
# sessions timed interleaved (A B A B), the idle pools spin on the cores the running one needs.
ALLOW_SPINNING = "0"
SESSION_CONFIG = {
    "session.intra_op.allow_spinning": ALLOW_SPINNING,
    "session.inter_op.allow_spinning": ALLOW_SPINNING,
}


def export_onnx(model: nn.Module, input_size: Sequence[int]) -> bytes:
    """The model as an ONNX graph (input ``images``, output ``logits``, dynamic batch)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model.eval(),
                torch.randn(1, *input_size),
                buffer,
                input_names=["images"],
                output_names=["logits"],
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                dynamo=False,
            )
        except Exception as error:  # the exporter's errors have no common base: name it
            first = first_line(error, fallback="")
            raise SecateursError(
                f"cannot export the model to ONNX ({type(error).__name__}: {first})"
            ) from None
    return buffer.getvalue()


def onnx_top1(graph: bytes, data, threads: int = 2) -> float:
    """Top-1 (%) of an ONNX graph in onnxruntime on ``data``'s whole test split."""
    import numpy as np

    session, correct, seen = onnx_session(graph, threads), 0, 0
    for images, labels in data.batches(data.test):
        logits = session.run(None, {"images": images.numpy()})[0]
        correct += int((np.argmax(logits, 1) == labels.numpy()).sum())
        seen += len(labels)
    return round(100.0 * correct / seen, 2)


def onnx_session(graph: bytes, threads: int) -> Any:
    """A CPU session of ``graph`` on ``threads`` threads, with :data:`SESSION_CONFIG`."""
    try:
        import onnxruntime
    except ImportError:
        raise SecateursError(
            "onnxruntime is not installed: pip install 'secateurs[onnx]'"
        ) from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = INTER_OP_THREADS
    for key, value in SESSION_CONFIG.items():
        options.add_session_config_entry(key, value)
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def compare_onnx(
    models: Sequence[nn.Module],
    input_size: Sequence[int],
    settings: LatencySettings | None = None,
) -> dict[int, list[dict[str, float]]]:
    """Like :func:`secateurs.measurement.latency.compare`, in onnxruntime (each model exported once,
    a CPU copy of one on another device)."""
    return compare_graphs(models, input_size, settings)


def compare_graphs(
    graphs: Sequence[bytes | nn.Module],
    input_size: Sequence[int],
    settings: LatencySettings | None = None,
) -> dict[int, list[dict[str, float]]]:
    """ONNX graphs (or models, exported) timed in onnxruntime in interleaved rounds."""
    return create_backend("onnxruntime").compare(graphs, input_size, settings or LatencySettings())
