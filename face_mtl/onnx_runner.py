"""The network on the CPU through ONNX Runtime.

The loaded module (weights from safetensors) is exported to ONNX in memory when a model is
loaded; nothing is written to disk. On a 2-core AVX2 EPYC, ONNX Runtime's CPU kernels ran
the shipped MobileNetV4 network at 1,110-1,570 images/s against 876-1,091 for torch's
traced, frozen graph in the same rounds (batches of 64-256 images), with outputs equal to
1e-5 (``python bench/bench_inference.py`` times both, through ``predict_crops``).
"""

from __future__ import annotations

import io
import threading
import warnings

import numpy as np
import torch
from torch import nn

INPUT_NAME = "image"


def onnx_runtime_available() -> bool:
    """ONNX Runtime and the ``onnx`` package (torch's exporter needs it) can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _Outputs(nn.Module):
    """The network's outputs as a tuple in ``names`` order (ONNX graphs return tuples)."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(x)
        return tuple(outputs[name] for name in self.names)


def export_onnx(model: nn.Module, input_size: int) -> tuple[bytes, tuple[str, ...]]:
    """(ONNX model bytes, output names) of ``model`` in eval mode, for any batch size."""
    example = torch.zeros(2, 3, input_size, input_size)
    model = model.eval()
    with torch.no_grad():
        names = tuple(sorted(model(example)))
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Outputs(model, names).eval(), (example,), buffer, input_names=[INPUT_NAME], output_names=list(names),
            dynamic_axes={INPUT_NAME: {0: "batch"}}, dynamo=False,
        )
    return buffer.getvalue(), names


class OnnxRunner:
    """Called like the module: N x 3 x S x S float32 tensor -> float32 outputs by head name.

    Each call runs on as many threads as torch is set to use at that moment
    (``torch.set_num_threads``), so thread settings hold for both runtimes: one ONNX Runtime
    session per thread count, made on first use.
    """

    runtime = "onnx"

    def __init__(self, model: nn.Module, input_size: int) -> None:
        import onnxruntime

        self._onnxruntime = onnxruntime
        self._graph, self.names = export_onnx(model, input_size)
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()
        self._session(torch.get_num_threads())  # fail here, at load time, if it cannot run

    def _session(self, threads: int):
        session = self._sessions.get(threads)
        if session is not None:
            return session
        with self._lock:
            if threads not in self._sessions:
                options = self._onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                # No spinning between calls: several analysis threads may share the cores.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[threads] = self._onnxruntime.InferenceSession(
                    self._graph, options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[threads]

    def eval(self) -> "OnnxRunner":
        """Like ``nn.Module.eval``, for callers that take either: the graph is in eval mode."""
        return self

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pixels = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        outputs = self._session(torch.get_num_threads()).run(list(self.names), {INPUT_NAME: pixels})
        return {name: torch.from_numpy(value) for name, value in zip(self.names, outputs)}
