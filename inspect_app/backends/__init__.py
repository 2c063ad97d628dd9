"""Inference backends behind one protocol, chosen by model file.

| model file | backend |
| --- | --- |
| a line folder (`HOME/lines/<line>` or its `vN/`), `weights.safetensors` | torch |
| `*.onnx` | onnxruntime |
| `*.engine` (TensorRT plan) | tensorrt |
"""

from __future__ import annotations

import importlib
from pathlib import Path

from inspect_app.backends.base import Backend, BackendError, BackendResult

BACKENDS: dict[str, str] = {
    "torch": "inspect_app.backends.torch_backend",
    "onnxruntime": "inspect_app.backends.onnxruntime_backend",
    "tensorrt": "inspect_app.backends.tensorrt_backend",
}
"""Backend name → module; the modules import their runtime lazily."""

SUFFIXES: dict[str, str] = {".safetensors": "torch", ".onnx": "onnxruntime", ".engine": "tensorrt"}

__all__ = ["BACKENDS", "Backend", "BackendError", "BackendResult", "backend_kind", "open_backend"]


def backend_kind(path: str | Path) -> str:
    """The backend a model file needs, from its suffix (a folder is a torch line model)."""
    path = Path(path)
    if path.is_dir():
        return "torch"
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        msg = (
            f"cannot tell the backend of model file {path}: expected a line folder or one of "
            f"{', '.join(SUFFIXES)}"
        )
        raise BackendError(msg)
    return kind


def _version_folder(path: Path) -> Path:
    """A line folder with ACTIVE → its active version; a weights file → its version folder."""
    if path.is_file():
        return path.parent
    active = path / "ACTIVE"
    if active.is_file():
        return path / active.read_text(encoding="utf-8").strip()
    return path


def open_backend(path: str | Path, threads: int | None = None) -> Backend:
    """Open the backend that runs the model file `path` (see the table above)."""
    path = Path(path)
    if not path.exists():
        msg = f"model file {path} not found"
        raise BackendError(msg)
    kind = backend_kind(path)
    if kind == "torch":
        from inspect_app.backends.torch_backend import TorchBackend

        return TorchBackend.from_line_folder(_version_folder(path))
    if kind == "onnxruntime":
        from inspect_app.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads=threads)
    return _open_tensorrt(path)


def _open_tensorrt(path: Path) -> Backend:
    """TensorRT lives in its own module, imported only here (Jetson/GPU machines only)."""
    try:
        module = importlib.import_module(BACKENDS["tensorrt"])
    except ModuleNotFoundError as exc:
        if exc.name != BACKENDS["tensorrt"]:
            raise
        msg = (
            f"cannot run {path}: the TensorRT backend is not part of this version yet; run the "
            "line's ONNX graph with --backend onnxruntime, or the line folder with --backend torch"
        )
        raise BackendError(msg) from exc
    backend: Backend = module.TensorRTBackend(path)
    return backend
