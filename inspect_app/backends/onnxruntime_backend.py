"""The onnxruntime backend: an exported line graph (`model.onnx`) on CPU (or CUDA when present).

The graph's inputs are named as `ModelInputs` fields (`image`, `spectrum`, `image_present`,
`vibration_present`) and its outputs as `Prediction` fields; see `base.INPUT_NAMES` and
`base.OUTPUT_NAMES`. `export_line_graph` writes such a graph from a torch line model; it is the
minimal export this backend needs until `inspect-app export` (models/export.py) takes it over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inspect_app.backends.base import INPUT_NAMES, OUTPUT_NAMES, BackendError, BackendResult

ONNX_OPSET = 17


class OnnxRuntimeBackend:
    """Runs an exported line graph with onnxruntime."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            msg = f"ONNX model {self.path} not found; make one with `inspect-app export --line L`"
            raise BackendError(msg)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = [
            p
            for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in ort.get_available_providers()
        ]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            msg = f"onnxruntime cannot load {self.path}: {exc}"
            raise BackendError(msg) from exc
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        missing = [n for n in OUTPUT_NAMES if n not in outputs]
        unknown = [n for n in self.inputs if n not in INPUT_NAMES]
        if missing or unknown:
            msg = (
                f"{self.path} is not a line graph: outputs lack {missing}, unknown inputs "
                f"{unknown}; expected inputs from {list(INPUT_NAMES)}, outputs {list(OUTPUT_NAMES)}"
            )
            raise BackendError(msg)

    def _feed(self, inputs: Any) -> dict[str, np.ndarray]:
        fields = inputs.as_kwargs()
        batch = next(int(v.shape[0]) for v in fields.values() if v is not None)
        feed: dict[str, np.ndarray] = {}
        for name, spec in self.inputs.items():
            value = fields.get(name)
            if value is not None:
                feed[name] = value.detach().cpu().numpy() if hasattr(value, "detach") else value
                continue
            # A modality the line does not have: zeros and "absent", as frames_to_tensor does.
            shape = [batch, *(d if isinstance(d, int) else 1 for d in spec.shape[1:])]
            dtype = np.bool_ if "bool" in spec.type else np.float32
            feed[name] = np.zeros(shape, dtype=dtype)
        return feed

    def predict(self, inputs: Any) -> BackendResult:
        values = self.session.run(list(OUTPUT_NAMES), self._feed(inputs))
        return BackendResult.from_arrays(dict(zip(OUTPUT_NAMES, values, strict=True)))

    def close(self) -> None:
        del self.session


def export_line_graph(model: Any, example: Any, out: str | Path) -> Path:
    """Write `model` (a torch line model in its static form) as an ONNX line graph at `out`.

    `example` is a `ModelInputs` batch used for tracing; the batch axis stays dynamic. Written to
    a temporary name first, so a reader never sees half a file.
    """
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kwargs = example.as_kwargs()
    names = [n for n in INPUT_NAMES if kwargs.get(n) is not None]
    args = tuple(kwargs[n] for n in names)

    class _Positional(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
            prediction = self.inner(**dict(zip(names, tensors, strict=True)))
            return tuple(getattr(prediction, n) for n in OUTPUT_NAMES)

    tmp = out.with_name(f".{out.name}.tmp")
    dynamic = {n: {0: "batch"} for n in (*names, *OUTPUT_NAMES)}
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            _Positional(model.eval()),
            args,
            str(tmp),
            input_names=names,
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    tmp.replace(out)
    return out
