"""onnxruntime on the CPU: the module exported to ONNX (as ``secateurs export`` and the run
reports do) and run in a session that does not spin between runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from secateurs.latency.backends.base import Backend, Runner, register_backend
from secateurs.measure.onnx_runtime import export_onnx, onnx_session


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

    def runner(self, module: nn.Module, input_shape: Sequence[int], threads: int) -> Runner:
        session = onnx_session(export_onnx(module, input_shape[1:]), threads)
        feed = {"images": np.random.default_rng(0).standard_normal(input_shape, np.float32)}
        return lambda: session.run(None, feed)
