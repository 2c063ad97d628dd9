"""The TensorRT backend: a serialized engine (`*.engine`) built on the Jetson by
`deploy/jetson/build_engine.py`, run with TensorRT 8.5 (JetPack 5) or 10.x (JetPack 6).

`tensorrt` and the CUDA bindings exist only on GPU machines, so they are imported here, lazily,
when an engine is opened. Two TensorRT APIs are spoken:
- named tensors (TensorRT >= 8.5, the only one in 10.x): `num_io_tensors`, `get_tensor_name`,
  `set_input_shape`, `set_tensor_address`, `execute_async_v3`;
- bindings (TensorRT < 8.5): `num_bindings`, `binding_is_input`, `set_binding_shape`,
  `execute_async_v2`.
Device memory comes from cuda-python (`cuda.bindings.runtime` or the older `cuda.cudart`) or,
failing that, pycuda.

The engine's metadata (`<engine>.json`, see `models.export.ExportMetadata`) names the inputs;
the line's own inputs (prompt tokens) are read from the `.npz` beside it, so switching lines
with the same heads needs no rebuild: pass another line's tensors to `set_line_tensors`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inspect_app.backends.base import OUTPUT_NAMES, BackendError, BackendResult
from models.export import ExportMetadata, read_line_tensors, read_metadata

PART_FIELDS: tuple[str, ...] = ("image", "spectrum", "image_present", "vibration_present")


class DeviceMemory(Protocol):
    """The few CUDA calls the backend needs; handles are opaque to it."""

    def alloc(self, nbytes: int) -> Any: ...
    def free(self, buffer: Any) -> None: ...
    def address(self, buffer: Any) -> int: ...
    def new_stream(self) -> Any: ...
    def stream_handle(self, stream: Any) -> int: ...
    def to_device(self, buffer: Any, host: np.ndarray, stream: Any) -> None: ...
    def to_host(self, host: np.ndarray, buffer: Any, stream: Any) -> None: ...
    def synchronize(self, stream: Any) -> None: ...


class CudaPythonMemory:
    """cuda-python's runtime API (`cuda.bindings.runtime`, or `cuda.cudart` before 12.6)."""

    def __init__(self) -> None:
        try:
            self.rt = importlib.import_module("cuda.bindings.runtime")
        except ModuleNotFoundError:
            self.rt = importlib.import_module("cuda.cudart")

    def _check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            msg = f"CUDA call failed: {err}"
            raise BackendError(msg)
        return rest[0] if rest else None

    def alloc(self, nbytes: int) -> Any:
        return self._check(self.rt.cudaMalloc(nbytes))

    def free(self, buffer: Any) -> None:
        self._check(self.rt.cudaFree(buffer))

    def address(self, buffer: Any) -> int:
        return int(buffer)

    def new_stream(self) -> Any:
        return self._check(self.rt.cudaStreamCreate())

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def to_device(self, buffer: Any, host: np.ndarray, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(buffer, host.ctypes.data, host.nbytes, kind, stream))

    def to_host(self, host: np.ndarray, buffer: Any, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, buffer, host.nbytes, kind, stream))

    def synchronize(self, stream: Any) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream))


class PyCudaMemory:
    """pycuda, with its primary context made current by `pycuda.autoinit`."""

    def __init__(self) -> None:
        importlib.import_module("pycuda.autoinit")
        self.cuda = importlib.import_module("pycuda.driver")

    def alloc(self, nbytes: int) -> Any:
        return self.cuda.mem_alloc(nbytes)

    def free(self, buffer: Any) -> None:
        buffer.free()

    def address(self, buffer: Any) -> int:
        return int(buffer)

    def new_stream(self) -> Any:
        return self.cuda.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def to_device(self, buffer: Any, host: np.ndarray, stream: Any) -> None:
        self.cuda.memcpy_htod_async(buffer, host, stream)

    def to_host(self, host: np.ndarray, buffer: Any, stream: Any) -> None:
        self.cuda.memcpy_dtoh_async(host, buffer, stream)

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()


def default_device_memory() -> DeviceMemory:
    """cuda-python if installed (JetPack 6 images), else pycuda (common on JetPack 5)."""
    errors = []
    for kind in (CudaPythonMemory, PyCudaMemory):
        try:
            return kind()
        except ModuleNotFoundError as exc:
            errors.append(str(exc))
    msg = (
        "the TensorRT backend needs CUDA bindings: `pip install cuda-python` (or pycuda); "
        f"tried: {'; '.join(errors)}"
    )
    raise BackendError(msg)


@dataclass
class _Slot:
    """One engine input or output: its name, dtype, engine shape and device buffer."""

    name: str
    is_input: bool
    dtype: np.dtype[Any]
    engine_shape: tuple[int, ...]  # -1 on the batch axis when the engine has a profile
    index: int  # binding index (bindings API) or tensor index (named API)
    buffer: Any = None
    capacity: int = 0


class TensorRTBackend:
    """Runs a TensorRT engine on the line's inputs; one `predict` at a time."""

    name = "tensorrt"

    def __init__(
        self,
        path: str | Path,
        *,
        memory: DeviceMemory | None = None,
        line_tensors: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            msg = (
                f"TensorRT engine {self.path} not found; "
                "build it on the device with deploy/jetson/build_engine.py"
            )
            raise BackendError(msg)
        try:
            self.meta: ExportMetadata = read_metadata(self.path)
            tensors = line_tensors or read_line_tensors(self.path, self.meta)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        try:
            trt = importlib.import_module("tensorrt")
        except ModuleNotFoundError as exc:
            msg = (
                f"cannot run {self.path}: TensorRT is not installed here (it ships with JetPack); "
                "run the line's ONNX graph with --backend onnxruntime instead"
            )
            raise BackendError(msg) from exc
        self.trt = trt
        self.memory = memory if memory is not None else default_device_memory()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            msg = (
                f"TensorRT {trt.__version__} cannot deserialize {self.path}: an engine only runs "
                "on the TensorRT version and GPU it was built on; rebuild it on this device"
            )
            raise BackendError(msg)
        self.context = self.engine.create_execution_context()
        self.named_api = hasattr(self.engine, "num_io_tensors")
        self.slots = self._slots()
        self.stream = self.memory.new_stream()
        self.max_batch, self.min_batch = self._batch_range()
        self.line_tensors: dict[str, np.ndarray] = {}
        self.set_line_tensors(tensors)

    # --- engine description ------------------------------------------------------------

    def _slots(self) -> dict[str, _Slot]:
        trt, engine = self.trt, self.engine
        slots: dict[str, _Slot] = {}
        if self.named_api:
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                slots[name] = _Slot(
                    name=name,
                    is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                    dtype=np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
                    engine_shape=tuple(engine.get_tensor_shape(name)),
                    index=i,
                )
        else:
            for i in range(engine.num_bindings):
                name = engine.get_binding_name(i)
                slots[name] = _Slot(
                    name=name,
                    is_input=bool(engine.binding_is_input(i)),
                    dtype=np.dtype(trt.nptype(engine.get_binding_dtype(i))),
                    engine_shape=tuple(engine.get_binding_shape(i)),
                    index=i,
                )
        missing = [n for n in OUTPUT_NAMES if n not in slots or slots[n].is_input]
        expected = {s.name for s in self.meta.inputs}
        inputs = {n for n, s in slots.items() if s.is_input}
        if missing or inputs != expected:
            msg = (
                f"{self.path} does not match its metadata: engine inputs {sorted(inputs)}, "
                f"metadata inputs {sorted(expected)}, missing outputs {missing}"
            )
            raise BackendError(msg)
        return slots

    def _batch_range(self) -> tuple[int, int]:
        """(max, min) batch of the engine: its profile 0 for a dynamic batch, else fixed."""
        first = next(s for s in self.slots.values() if s.is_input and s.name in PART_FIELDS)
        if first.engine_shape[0] != -1:
            return first.engine_shape[0], first.engine_shape[0]
        if self.named_api:
            low, _, high = self.engine.get_tensor_profile_shape(first.name, 0)
        else:
            low, _, high = self.engine.get_profile_shape(0, first.index)
        return int(high[0]), int(low[0])

    def set_line_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        """Use another line's prompt tokens (same engine, same heads, no rebuild)."""
        for name in self.meta.line_inputs:
            if name not in tensors:
                msg = (
                    f"line tensors lack {name!r}; the engine {self.path} needs "
                    f"{self.meta.line_inputs}"
                )
                raise BackendError(msg)
            value = np.ascontiguousarray(tensors[name], dtype=self.slots[name].dtype)
            want = tuple(self.meta.input_spec(name).shape)
            if value.shape != want:
                msg = f"line tensor {name!r} has shape {value.shape}; the engine expects {want}"
                raise BackendError(msg)
            self.line_tensors[name] = value

    # --- inference ----------------------------------------------------------------------

    def _part_arrays(self, inputs: Any) -> tuple[int, dict[str, np.ndarray]]:
        fields = inputs.as_kwargs()
        present = [v for v in fields.values() if v is not None]
        if not present:
            msg = "ModelInputs has no tensor at all; nothing to score"
            raise BackendError(msg)
        batch = int(present[0].shape[0])
        arrays: dict[str, np.ndarray] = {}
        for name in PART_FIELDS:
            if name not in self.slots:
                continue
            slot = self.slots[name]
            value = fields.get(name)
            if value is None:  # a modality this line lacks: zeros, marked absent
                arrays[name] = np.zeros((batch, *slot.engine_shape[1:]), dtype=slot.dtype)
                continue
            host = value.detach().cpu().numpy() if hasattr(value, "detach") else value
            arrays[name] = np.ascontiguousarray(host, dtype=slot.dtype)
        return batch, arrays

    def _ensure(self, slot: _Slot, nbytes: int) -> None:
        if slot.capacity >= nbytes:
            return
        if slot.buffer is not None:
            self.memory.free(slot.buffer)
        slot.buffer = self.memory.alloc(max(nbytes, 1))
        slot.capacity = nbytes

    def _run_chunk(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {**arrays, **self.line_tensors}
        for name, host in feeds.items():
            slot = self.slots[name]
            if -1 in slot.engine_shape:
                if self.named_api:
                    self.context.set_input_shape(name, host.shape)
                else:
                    self.context.set_binding_shape(slot.index, host.shape)
            self._ensure(slot, host.nbytes)
            self.memory.to_device(slot.buffer, host, self.stream)
        outputs: dict[str, np.ndarray] = {}
        for slot in self.slots.values():
            if slot.is_input:
                continue
            if self.named_api:
                shape = tuple(self.context.get_tensor_shape(slot.name))
            else:
                shape = tuple(self.context.get_binding_shape(slot.index))
            outputs[slot.name] = np.empty(shape, dtype=slot.dtype)
            self._ensure(slot, outputs[slot.name].nbytes)
        handle = self.memory.stream_handle(self.stream)
        if self.named_api:
            for slot in self.slots.values():
                self.context.set_tensor_address(slot.name, self.memory.address(slot.buffer))
            ok = self.context.execute_async_v3(handle)
        else:
            bindings = [0] * len(self.slots)
            for slot in self.slots.values():
                bindings[slot.index] = self.memory.address(slot.buffer)
            ok = self.context.execute_async_v2(bindings, handle)
        if not ok:
            msg = f"TensorRT failed to run {self.path} (see the TensorRT log above)"
            raise BackendError(msg)
        for name, host in outputs.items():
            self.memory.to_host(host, self.slots[name].buffer, self.stream)
        self.memory.synchronize(self.stream)
        return outputs

    def predict(self, inputs: Any) -> BackendResult:
        """Scores the batch in engine-sized chunks; a fixed-batch engine gets zero padding."""
        batch, arrays = self._part_arrays(inputs)
        pieces: list[dict[str, np.ndarray]] = []
        for start in range(0, batch, self.max_batch):
            chunk = {k: v[start : start + self.max_batch] for k, v in arrays.items()}
            n = len(next(iter(chunk.values())))
            if n < self.min_batch:
                pad = self.min_batch - n
                chunk = {
                    k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)])
                    for k, v in chunk.items()
                }
            out = self._run_chunk(chunk)
            pieces.append({k: v[:n] for k, v in out.items()})
        merged = {k: np.concatenate([p[k] for p in pieces]) for k in OUTPUT_NAMES}
        return BackendResult.from_arrays(merged)

    def close(self) -> None:
        for slot in self.slots.values():
            if slot.buffer is not None:
                self.memory.free(slot.buffer)
                slot.buffer = None
                slot.capacity = 0
        self.context = None
        self.engine = None
