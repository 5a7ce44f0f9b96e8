"""onnxruntime on the CPU: the module exported to ONNX (as ``secateurs export`` does) and run in
a session made by :func:`secateurs.measurement.onnx_runtime.onnx_session` (where its thread and
spinning settings are). A model already exported (ONNX bytes) is run as it is."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from secateurs.device import model_device
from secateurs.measurement.backends.base import Backend, register_backend
from secateurs.measurement.onnx_runtime import export_onnx, onnx_session
from secateurs.measurement.timing import Runner


@register_backend
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def versions(self) -> dict[str, str]:
        try:
            import onnxruntime
        except ImportError:
            found = "missing"
        else:
            found = onnxruntime.__version__
        return {"torch": torch.__version__, "onnxruntime": found}

    def prepare(self, module: nn.Module | bytes, input_size: Sequence[int]) -> bytes:
        """The ONNX graph (dynamic batch) of ``module``, exported from a CPU copy if needed."""
        if isinstance(module, bytes):
            return module
        if model_device(module).type != "cpu":  # onnxruntime runs a CPU export
            module = copy.deepcopy(module).cpu()
        return export_onnx(module.eval(), input_size)

    def runner(self, module: bytes, input_shape: Sequence[int], threads: int) -> Runner:
        session = onnx_session(module, threads)
        feed = {"images": np.random.default_rng(0).standard_normal(input_shape, np.float32)}
        return lambda: session.run(None, feed)
