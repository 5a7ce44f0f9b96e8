"""Deployment latency: the model exported to ONNX and timed in onnxruntime on the CPU.

PyTorch eager latency is what a researcher sees; an engineer shipping to a CPU or an edge device
runs an exported graph. Export uses the TorchScript-based exporter (no extra dependencies), with a
dynamic batch dimension; timing follows :mod:`secateurs.measure.latency` (warm-up, interleaved
repeats, median).
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from secateurs.errors import SecateursError, first_line
from secateurs.measure.latency import LatencySettings, summarise


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


def onnx_session(graph: bytes, threads: int):
    try:
        import onnxruntime
    except ImportError:
        raise SecateursError(
            "onnxruntime is not installed: pip install 'secateurs[onnx]'"
        ) from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Without this each session's thread pool busy-waits after a run; with several sessions timed
    # interleaved (A B A B), the idle pools spin on the cores the running one needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def compare_onnx(
    models: Sequence[nn.Module],
    input_size: Sequence[int],
    settings: LatencySettings | None = None,
) -> dict[int, list[dict[str, float]]]:
    """Like :func:`secateurs.measure.latency.compare`, in onnxruntime."""
    graphs = [export_onnx(m, input_size) for m in models]
    return compare_graphs(graphs, input_size, settings)


def compare_graphs(
    graphs: Sequence[bytes],
    input_size: Sequence[int],
    settings: LatencySettings | None = None,
) -> dict[int, list[dict[str, float]]]:
    """ONNX graphs timed in onnxruntime in interleaved rounds, as :func:`compare_onnx`."""
    settings = settings or LatencySettings()
    sessions = [onnx_session(graph, settings.threads) for graph in graphs]
    results: dict[int, list[dict[str, float]]] = {}
    for batch in settings.batch_sizes:
        feed = {
            "images": np.random.default_rng(0).standard_normal((batch, *input_size), np.float32)
        }
        for _ in range(settings.warmup):
            for session in sessions:
                session.run(None, feed)
        times: list[list[float]] = [[] for _ in sessions]
        for _ in range(settings.repeats):
            for index, session in enumerate(sessions):
                started = time.perf_counter()
                session.run(None, feed)
                times[index].append((time.perf_counter() - started) * 1000)
        summaries = [summarise(t) for t in times]
        for summary in summaries:
            summary["ratio"] = summaries[0]["median"] / summary["median"]
        results[batch] = summaries
    return results
