"""The TensorRT backend's code path against `FakeTensorRT`, a stand-in for the `tensorrt` module.

TensorRT exists only on GPU machines. `FakeTensorRT` is injected as `sys.modules["tensorrt"]`
and imitates the API surface the backend touches (TensorRT 10 named tensors, or the older
bindings); its "engine" computes simple numpy functions of whatever sits in (fake) device memory.
The tests check the plumbing: deserialize, set input shapes, bind addresses, execute, read the
outputs back into a BackendResult, chunk and pad batches, and switch the line's prompt tokens.
They prove nothing about real TensorRT numerics (the ONNX tests cover the graph itself).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inspect_app.backends.base import BackendError
from models.export import ExportMetadata, TensorSpec, metadata_path
from models.inputs import ModelInputs

S, F, P, D, C = 16, 8, 3, 4, 2  # image size, spectrum bins, prompt tokens, width, classes


def reference_outputs(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the fake engine computes; the expected values of every test."""
    image, spectrum = feeds["image"], feeds["spectrum"]
    prompt = feeds["prompt_tokens"]
    m = spectrum.mean(axis=(1, 2))
    logits = np.stack([m, -m], axis=1)
    return {
        "defect_score": 1
        / (1 + np.exp(-(image.mean(axis=(1, 2, 3)) + prompt.sum())))
        * feeds["image_present"],
        "class_probs": np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True),
        "heatmap": 1 / (1 + np.exp(-image[:, 0, ::8, ::8])),
        "anomaly_score": spectrum.std(axis=(1, 2)) * feeds["vibration_present"] + prompt.mean(),
    }


INPUTS = {
    "image": ((-1, 3, S, S), np.float32),
    "spectrum": ((-1, 2, F), np.float32),
    "image_present": ((-1,), np.bool_),
    "vibration_present": ((-1,), np.bool_),
    "prompt_tokens": ((P, D), np.float32),
}
OUTPUTS = {
    "defect_score": ((-1,), np.float32),
    "class_probs": ((-1, C), np.float32),
    "heatmap": ((-1, S // 8, S // 8), np.float32),
    "anomaly_score": ((-1,), np.float32),
}


class FakeDeviceMemory:
    """Device memory as numpy byte arrays keyed by fake addresses; counts what happened."""

    def __init__(self) -> None:
        self.buffers: dict[int, np.ndarray] = {}
        self.next_address = 0x1000
        self.freed = 0

    def alloc(self, nbytes: int) -> int:
        self.next_address += 0x1000 + nbytes
        self.buffers[self.next_address] = np.zeros(nbytes, dtype=np.uint8)
        return self.next_address

    def free(self, buffer: int) -> None:
        del self.buffers[buffer]
        self.freed += 1

    def address(self, buffer: int) -> int:
        return buffer

    def new_stream(self) -> str:
        return "stream-0"

    def stream_handle(self, stream: str) -> int:
        return 7

    def to_device(self, buffer: int, host: np.ndarray, stream: str) -> None:
        raw = np.ascontiguousarray(host).view(np.uint8).reshape(-1)
        self.buffers[buffer][: raw.size] = raw

    def to_host(self, host: np.ndarray, buffer: int, stream: str) -> None:
        host.reshape(-1).view(np.uint8)[:] = self.buffers[buffer][: host.nbytes]

    def synchronize(self, stream: str) -> None:
        pass

    def read(self, address: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.buffers[address][:n].view(dtype).reshape(shape).copy()

    def write(self, address: int, value: np.ndarray) -> None:
        raw = np.ascontiguousarray(value).view(np.uint8).reshape(-1)
        self.buffers[address][: raw.size] = raw


class FakeEngine:
    def __init__(self, fake: FakeTensorRT) -> None:
        self.fake = fake
        self.specs = {**INPUTS, **OUTPUTS}
        self.names = list(self.specs)
        if fake.static_batch is not None:
            self.specs = {
                n: ((fake.static_batch, *s[1:]) if s[0] == -1 else s, t)
                for n, (s, t) in self.specs.items()
            }
        if fake.named_api:
            self.num_io_tensors = len(self.names)
        else:
            self.num_bindings = len(self.names)

    # named tensors (TensorRT >= 8.5)
    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> str:
        return "INPUT" if name in INPUTS else "OUTPUT"

    def get_tensor_dtype(self, name: str) -> Any:
        return self.specs[name][1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.specs[name][0]

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple[tuple[int, ...], ...]:
        rest = self.specs[name][0][1:]
        return (1, *rest), (self.fake.max_batch, *rest), (self.fake.max_batch, *rest)

    # bindings (TensorRT < 8.5)
    def get_binding_name(self, i: int) -> str:
        return self.names[i]

    def binding_is_input(self, i: int) -> bool:
        return self.names[i] in INPUTS

    def get_binding_dtype(self, i: int) -> Any:
        return self.specs[self.names[i]][1]

    def get_binding_shape(self, i: int) -> tuple[int, ...]:
        return self.specs[self.names[i]][0]

    def get_profile_shape(self, profile: int, i: int) -> tuple[tuple[int, ...], ...]:
        return self.get_tensor_profile_shape(self.names[i], profile)

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.fake = engine.fake
        self.shapes = {n: s for n, (s, _) in engine.specs.items()}
        self.addresses: dict[str, int] = {}

    def _batch(self) -> int:
        return self.shapes["image"][0]

    def _output_shape(self, name: str) -> tuple[int, ...]:
        shape = self.engine.specs[name][0]
        return (self._batch(), *shape[1:]) if shape[0] == -1 else shape

    # named tensors
    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.fake.calls.append(("set_input_shape", name, tuple(shape)))
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._output_shape(name) if name in OUTPUTS else self.shapes[name]

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.fake.calls.append(("execute_async_v3", stream_handle))
        return self._compute()

    # bindings
    def set_binding_shape(self, i: int, shape: tuple[int, ...]) -> bool:
        return self.set_input_shape(self.engine.names[i], shape)

    def get_binding_shape(self, i: int) -> tuple[int, ...]:
        return self.get_tensor_shape(self.engine.names[i])

    def execute_async_v2(self, bindings: list[int], stream_handle: int) -> bool:
        self.fake.calls.append(("execute_async_v2", stream_handle))
        self.addresses = dict(zip(self.engine.names, bindings, strict=True))
        return self._compute()

    def _compute(self) -> bool:
        mem = self.fake.memory
        feeds = {n: mem.read(self.addresses[n], self.shapes[n], t) for n, (_, t) in INPUTS.items()}
        for name, value in reference_outputs(feeds).items():
            mem.write(self.addresses[name], value.astype(np.float32))
        return True


class FakeTensorRT(types.ModuleType):
    """A fake `tensorrt` module: just the API the backend calls, recording what it is asked."""

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            self.severity = severity

    class TensorIOMode:
        INPUT = "INPUT"
        OUTPUT = "OUTPUT"

    def __init__(
        self,
        memory: FakeDeviceMemory,
        *,
        named_api: bool,
        static_batch: int | None = None,
        max_batch: int = 4,
        corrupt: bool = False,
    ) -> None:
        super().__init__("tensorrt")
        self.__version__ = "10.3.0" if named_api else "8.4.1"
        self.memory = memory
        self.named_api = named_api
        self.static_batch = static_batch
        self.max_batch = max_batch
        self.corrupt = corrupt
        self.calls: list[tuple[Any, ...]] = []
        fake = self

        class Runtime:
            def __init__(self, logger: Any) -> None:
                fake.calls.append(("Runtime",))

            def deserialize_cuda_engine(self, blob: bytes) -> FakeEngine | None:
                fake.calls.append(("deserialize_cuda_engine", blob))
                return None if fake.corrupt else FakeEngine(fake)

        self.Runtime = Runtime

    @staticmethod
    def nptype(dtype: Any) -> Any:
        return dtype


def write_engine(folder: Path, prompt: np.ndarray) -> Path:
    engine = folder / "model.engine"
    engine.write_bytes(b"serialized plan")
    np.savez(folder / "model.line.npz", prompt_tokens=prompt)
    ExportMetadata(
        line="line-a",
        version="v1",
        inputs=[TensorSpec(n, s, np.dtype(t).name) for n, (s, t) in INPUTS.items()],
        outputs=[TensorSpec(n, s, np.dtype(t).name) for n, (s, t) in OUTPUTS.items()],
        line_inputs=["prompt_tokens"],
        line_tensors="model.line.npz",
        normalization={"mean": [0.5] * 3, "std": [0.25] * 3, "image_size": S},
        spectrum={},
        threshold=0.5,
        classes=["scratch", "dent"],
        model_sha256="0" * 64,
    ).write(metadata_path(engine))
    return engine


def batch(n: int, seed: int = 0) -> ModelInputs:
    g = torch.Generator().manual_seed(seed)
    return ModelInputs(
        image=torch.randn(n, 3, S, S, generator=g),
        spectrum=torch.randn(n, 2, F, generator=g),
        image_present=torch.tensor([i % 3 != 2 for i in range(n)]),
        vibration_present=torch.ones(n, dtype=torch.bool),
    )


def expected(inputs: ModelInputs, prompt: np.ndarray) -> dict[str, np.ndarray]:
    feeds = {k: v.numpy() for k, v in inputs.as_kwargs().items()}
    return reference_outputs({**feeds, "prompt_tokens": prompt})


@pytest.fixture
def prompt() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(P, D)).astype(np.float32)


@pytest.fixture
def install() -> Iterator[Any]:
    installed: list[FakeTensorRT] = []

    def _install(**kwargs: Any) -> FakeTensorRT:
        fake = FakeTensorRT(FakeDeviceMemory(), **kwargs)
        sys.modules["tensorrt"] = fake
        installed.append(fake)
        return fake

    saved = sys.modules.get("tensorrt")
    yield _install
    if saved is None:
        sys.modules.pop("tensorrt", None)
    else:
        sys.modules["tensorrt"] = saved


def _open(engine: Path, fake: FakeTensorRT) -> Any:
    from inspect_app.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(engine, memory=fake.memory)


@pytest.mark.parametrize("named_api", [True, False], ids=["named-tensors", "bindings"])
def test_predict_runs_the_engine_and_reads_outputs(
    tmp_path: Path, prompt: np.ndarray, install: Any, named_api: bool
) -> None:
    fake = install(named_api=named_api, max_batch=4)
    backend = _open(write_engine(tmp_path, prompt), fake)
    assert ("deserialize_cuda_engine", b"serialized plan") in fake.calls
    inputs = batch(6)  # more than the profile's max batch of 4: two chunks
    result = backend.predict(inputs)
    want = expected(inputs, prompt)
    for name, value in want.items():
        np.testing.assert_allclose(getattr(result, name), value, rtol=1e-6, atol=1e-6)
    shapes = [c for c in fake.calls if c[0] == "set_input_shape" and c[1] == "image"]
    assert [c[2][0] for c in shapes] == [4, 2]
    execute = "execute_async_v3" if named_api else "execute_async_v2"
    assert [c for c in fake.calls if c[0].startswith("execute")] == [(execute, 7)] * 2
    backend.close()
    assert not fake.memory.buffers  # every device buffer freed


def test_fixed_batch_engine_pads_and_trims(
    tmp_path: Path, prompt: np.ndarray, install: Any
) -> None:
    fake = install(named_api=True, static_batch=2)
    backend = _open(write_engine(tmp_path, prompt), fake)
    inputs = batch(3, seed=2)
    result = backend.predict(inputs)
    assert len(result) == 3
    np.testing.assert_allclose(result.defect_score, expected(inputs, prompt)["defect_score"], 1e-6)
    assert not [c for c in fake.calls if c[0] == "set_input_shape"]  # static: nothing to set


def test_switching_the_line_tensors_changes_the_answer(
    tmp_path: Path, prompt: np.ndarray, install: Any
) -> None:
    fake = install(named_api=True)
    backend = _open(write_engine(tmp_path, prompt), fake)
    inputs = batch(2, seed=3)
    other = prompt + 0.5
    backend.set_line_tensors({"prompt_tokens": other})
    result = backend.predict(inputs)
    np.testing.assert_allclose(result.anomaly_score, expected(inputs, other)["anomaly_score"], 1e-6)
    assert not np.allclose(result.anomaly_score, expected(inputs, prompt)["anomaly_score"])
    with pytest.raises(BackendError, match="shape"):
        backend.set_line_tensors({"prompt_tokens": np.zeros((P + 1, D), np.float32)})


def test_missing_modality_is_fed_as_zeros_and_absent(
    tmp_path: Path, prompt: np.ndarray, install: Any
) -> None:
    fake = install(named_api=True)
    backend = _open(write_engine(tmp_path, prompt), fake)
    inputs = batch(2)
    vib_only = ModelInputs(
        image=None, spectrum=inputs.spectrum, vibration_present=torch.ones(2, dtype=torch.bool)
    )
    result = backend.predict(vib_only)
    assert np.all(result.defect_score == 0)  # image_present fed as False


def test_engine_from_another_tensorrt_is_refused(
    tmp_path: Path, prompt: np.ndarray, install: Any
) -> None:
    fake = install(named_api=True, corrupt=True)
    with pytest.raises(BackendError, match="rebuild it on this device"):
        _open(write_engine(tmp_path, prompt), fake)


def test_without_tensorrt_the_error_says_what_to_do(tmp_path: Path, prompt: np.ndarray) -> None:
    from inspect_app.backends.tensorrt_backend import TensorRTBackend

    saved = sys.modules.pop("tensorrt", None)
    sys.modules["tensorrt"] = None  # type: ignore[assignment]  # import now fails
    try:
        with pytest.raises(BackendError, match="onnxruntime"):
            TensorRTBackend(write_engine(tmp_path, prompt), memory=FakeDeviceMemory())
    finally:
        del sys.modules["tensorrt"]
        if saved is not None:
            sys.modules["tensorrt"] = saved


def test_engine_without_metadata_is_refused(tmp_path: Path, install: Any) -> None:
    from inspect_app.backends.tensorrt_backend import TensorRTBackend

    engine = tmp_path / "model.engine"
    engine.write_bytes(b"x")
    with pytest.raises(BackendError, match=r"model\.engine\.json not found"):
        TensorRTBackend(engine, memory=FakeDeviceMemory())


def test_backend_module_does_not_import_tensorrt_at_top_level() -> None:
    import importlib

    saved = sys.modules.pop("tensorrt", None)
    try:
        module = importlib.reload(importlib.import_module("inspect_app.backends.tensorrt_backend"))
        assert "tensorrt" not in sys.modules
        assert hasattr(module, "TensorRTBackend")
    finally:
        if saved is not None:
            sys.modules["tensorrt"] = saved
