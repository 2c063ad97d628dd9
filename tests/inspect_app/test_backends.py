"""Backends: chosen by model file, one protocol; the torch and onnxruntime ones agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inspect_app.backends import BackendError, backend_kind, open_backend
from inspect_app.backends.onnxruntime_backend import (
    OnnxRuntimeBackend,
    export_for_runtime,
    open_exported,
)
from inspect_app.backends.torch_backend import TorchBackend
from models.inputs import ModelInputs
from models.outputs import Prediction


class FakeLineModel(torch.nn.Module):
    """A stand-in line model: same forward signature and Prediction as models.line_model."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(2 * 8, 3)

    def forward(
        self,
        image: torch.Tensor,
        spectrum: torch.Tensor,
        image_present: torch.Tensor,
        vibration_present: torch.Tensor,
        prompt_tokens: torch.Tensor | None = None,
    ) -> Prediction:
        logits = self.proj(spectrum.flatten(1))  # (B, 3)
        heat = torch.sigmoid(torch.nn.functional.avg_pool2d(image.mean(1, keepdim=True), 8))[:, 0]
        score = torch.sigmoid(logits[:, 0]) * image_present.float()
        return Prediction(
            defect_score=score,
            class_probs=torch.softmax(logits[:, 1:], dim=1),
            heatmap=heat,
            anomaly_score=logits[:, 0] + vibration_present.float(),
        )


def inputs(batch: int) -> ModelInputs:
    g = torch.Generator().manual_seed(batch)
    return ModelInputs(
        image=torch.randn(batch, 3, 32, 32, generator=g),
        spectrum=torch.randn(batch, 2, 8, generator=g),
        image_present=torch.ones(batch, dtype=torch.bool),
        vibration_present=torch.ones(batch, dtype=torch.bool),
    )


def test_kind_by_suffix(tmp_path: Path) -> None:
    assert backend_kind(tmp_path) == "torch"
    assert backend_kind("m.safetensors") == "torch"
    assert backend_kind("m.onnx") == "onnxruntime"
    assert backend_kind("m.engine") == "tensorrt"
    with pytest.raises(BackendError, match=r"\.onnx"):
        backend_kind("m.pt")


def test_tensorrt_engine_without_its_metadata_is_explained(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not an engine")
    with pytest.raises(BackendError, match=r"model\.engine"):
        open_backend(engine)  # goes to the TensorRT backend, which names what is missing


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"nope\.onnx"):
        open_backend(tmp_path / "nope.onnx")


def test_onnx_export_and_runtime_match_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = FakeLineModel().eval()
    graph = export_for_runtime(model, inputs(2), tmp_path / "line.onnx")
    assert isinstance(open_backend(graph, threads=1), OnnxRuntimeBackend)
    ort_backend = open_exported(graph, threads=1)
    assert isinstance(ort_backend, OnnxRuntimeBackend)
    torch_backend = TorchBackend(model)
    batch = inputs(5)  # another batch size than the export's: the batch axis is dynamic
    a, b = torch_backend.predict(batch), ort_backend.predict(batch)
    assert len(a) == len(b) == 5
    for name in ("defect_score", "class_probs", "heatmap", "anomaly_score"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-4, atol=1e-5)


def test_onnx_graph_with_wrong_outputs_is_refused(tmp_path: Path) -> None:
    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    path = tmp_path / "plain.onnx"
    torch.onnx.export(Plain(), (torch.zeros(1, 2),), str(path), input_names=["x"], dynamo=False)
    with pytest.raises(BackendError, match="not a line graph"):
        OnnxRuntimeBackend(path, line_tensors={})
    with pytest.raises(BackendError, match="metadata"):
        OnnxRuntimeBackend(path)  # an unknown input is a line tensor: its values are missing
