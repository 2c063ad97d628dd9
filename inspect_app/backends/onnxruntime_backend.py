"""The onnxruntime backend: an exported line graph (`model.onnx`) on CPU (or CUDA when present).

The graph's part inputs are named as `ModelInputs` fields (`image`, `spectrum`, `image_present`,
`vibration_present`), its outputs as `Prediction` fields (see `base.INPUT_NAMES`,
`base.OUTPUT_NAMES`). Any other input is one of the line's own tensors (its prompt tokens), fed
with the same values for every batch: given as `line_tensors`, or read from the export's
metadata beside the graph (`model.onnx.json` + its `.npz`, written by `inspect-app export`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inspect_app.backends.base import INPUT_NAMES, OUTPUT_NAMES, BackendError, BackendResult


class OnnxRuntimeBackend:
    """Runs an exported line graph with onnxruntime."""

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        line_tensors: Mapping[str, np.ndarray] | None = None,
    ) -> None:
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
        # Worker threads that spin between calls steal the CPU the decode and spectrum stages
        # of the pipeline need (on 2 cores this halved throughput); let them sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
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
        line_inputs = [n for n in self.inputs if n not in INPUT_NAMES]
        if line_inputs and line_tensors is None:
            line_tensors = _exported_line_tensors(self.path)
        values = dict(line_tensors or {})
        missing = [n for n in OUTPUT_NAMES if n not in outputs]
        unfed = [n for n in line_inputs if n not in values]
        if missing or unfed:
            msg = (
                f"{self.path} is not a line graph: outputs lack {missing}, inputs without values "
                f"{unfed}; expected part inputs from {list(INPUT_NAMES)}, line tensors from its "
                f"metadata, outputs {list(OUTPUT_NAMES)}"
            )
            raise BackendError(msg)
        self.line_tensors = {n: np.ascontiguousarray(values[n]) for n in line_inputs}

    def _feed(self, inputs: Any) -> dict[str, np.ndarray]:
        fields = inputs.as_kwargs()
        batch = next(int(v.shape[0]) for v in fields.values() if v is not None)
        feed: dict[str, np.ndarray] = dict(self.line_tensors)
        for name, spec in self.inputs.items():
            if name in feed:
                continue
            value = fields.get(name)
            if value is not None:
                feed[name] = value.detach().cpu().numpy() if hasattr(value, "detach") else value
                continue
            # A modality this batch lacks: zeros and "absent", as frames_to_tensor does.
            shape = [batch, *(d if isinstance(d, int) else 1 for d in spec.shape[1:])]
            dtype = np.bool_ if "bool" in spec.type else np.float32
            feed[name] = np.zeros(shape, dtype=dtype)
        return feed

    def predict(self, inputs: Any) -> BackendResult:
        values = self.session.run(list(OUTPUT_NAMES), self._feed(inputs))
        return BackendResult.from_arrays(dict(zip(OUTPUT_NAMES, values, strict=True)))

    def close(self) -> None:
        del self.session


def _exported_line_tensors(path: Path) -> dict[str, np.ndarray]:
    from models.export import read_line_tensors, read_metadata

    try:
        return read_line_tensors(path, read_metadata(path))
    except ValueError as exc:
        raise BackendError(str(exc)) from exc


def export_for_runtime(model: Any, example: Any, out: str | Path) -> Path:
    """Export a torch line model for this backend: the graph at `out` and its line tensors in
    `<out>.line.npz`. Uses the project's export (`models.export.export_line_model`)."""
    from models.export import export_line_model

    out = Path(out)
    exported = export_line_model(model, example.as_kwargs(), out)
    values: dict[str, Any] = dict(exported.line_values)
    np.savez(line_tensors_path(out), **values)
    return out


def line_tensors_path(graph: Path) -> Path:
    """Where `export_for_runtime` keeps a graph's line tensors."""
    return graph.with_name(graph.name + ".line.npz")


def open_exported(path: Path, threads: int | None = None) -> OnnxRuntimeBackend:
    """Open a graph written by `export_for_runtime` (or by `inspect-app export`)."""
    values = line_tensors_path(path)
    if values.is_file():
        with np.load(values, allow_pickle=False) as npz:
            return OnnxRuntimeBackend(path, threads, {n: npz[n] for n in npz.files})
    return OnnxRuntimeBackend(path, threads)
