"""The exported line graph: onnxruntime equals torch, TensorRT 8.5 and 10.x parse every op.

The operator lists are data (tests/data/tensorrt_onnx_ops.json), copied from onnx-tensorrt's
docs/operators.md on the release/8.5-GA and release/10.x branches, with the sources named there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models.export import EXPORT_OPSET, ExportedGraph, check_graph, export_line_model
from models.inputs import ModelInputs
from models.line_model import LineModel

OPS_FILE = Path(__file__).resolve().parents[1] / "data" / "tensorrt_onnx_ops.json"
OUTPUTS = ("defect_score", "class_probs", "heatmap", "anomaly_score")


@dataclass
class Exported:
    model: LineModel
    graph: ExportedGraph
    session: ort.InferenceSession


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory,
    random_parts: Callable[..., ModelInputs],
    tiny_line_model: Callable[..., LineModel],
) -> Exported:
    model = tiny_line_model(image_template=True)  # the pixel template is in the graph too
    cfg = model.config
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    graph = export_line_model(model, random_parts(cfg, 2, 0).as_kwargs(), path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return Exported(model, graph, session)


def _run(e: Exported, parts: ModelInputs, prompt: np.ndarray) -> dict[str, np.ndarray]:
    feed = {k: v.numpy() for k, v in parts.as_kwargs().items() if v is not None}
    feed["prompt_tokens"] = prompt
    return dict(zip(OUTPUTS, e.session.run(list(OUTPUTS), feed), strict=True))


def _torch(e: Exported, parts: ModelInputs, prompt: np.ndarray) -> dict[str, np.ndarray]:
    n = parts.image.shape[0]  # type: ignore[union-attr]
    prompts = torch.from_numpy(prompt).unsqueeze(0).expand(n, -1, -1)
    with torch.no_grad():
        pred = e.model(**parts.as_kwargs(), prompt_tokens=prompts)
    return {k: getattr(pred, k).numpy() for k in OUTPUTS}


@pytest.mark.slow
def test_onnxruntime_equals_torch_fp32(
    exported: Exported, random_parts: Callable[..., ModelInputs]
) -> None:
    cfg = exported.model.config
    parts = random_parts(
        cfg, 4, seed=1
    )  # another batch size than the trace: the batch axis is dynamic
    prompt = exported.graph.line_values["prompt_tokens"]
    got, want = _run(exported, parts, prompt), _torch(exported, parts, prompt)
    for name in OUTPUTS:
        np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=0, err_msg=name)


@pytest.mark.slow
def test_swapping_the_prompt_input_changes_the_output_as_torch_does(
    exported: Exported, random_parts: Callable[..., ModelInputs]
) -> None:
    cfg = exported.model.config
    parts = random_parts(cfg, 3, seed=2)
    prompt = exported.graph.line_values["prompt_tokens"]
    other = np.random.default_rng(5).normal(0.0, 0.5, prompt.shape).astype(np.float32)
    before, after = _run(exported, parts, prompt), _run(exported, parts, other)
    want = _torch(exported, parts, other)
    assert not np.allclose(before["class_probs"], after["class_probs"], atol=1e-4)
    for name in OUTPUTS:
        np.testing.assert_allclose(after[name], want[name], atol=1e-4, rtol=0, err_msg=name)


def test_every_op_parses_on_tensorrt_85_and_10(exported: Exported) -> None:
    lists = json.loads(OPS_FILE.read_text(encoding="utf-8"))
    supported = [frozenset(lists[v]["supported"]) for v in ("tensorrt_8.5", "tensorrt_10.x")]
    graph = onnx.load(str(exported.graph.path))
    report = check_graph(graph, supported, max_opset=lists["tensorrt_8.5"]["max_opset"])
    assert report.ok, report.problems
    assert report.opset <= EXPORT_OPSET <= 17
    assert "LayerNormalization" not in report.op_counts
    assert "TopK" in report.op_counts  # the MoE router survives, with a constant k


def test_graph_inputs_and_line_values(exported: Exported) -> None:
    names = [s.name for s in exported.graph.inputs]
    assert names == ["image", "spectrum", "image_present", "vibration_present", "prompt_tokens"]
    prompt_spec = exported.graph.inputs[-1]
    assert prompt_spec.shape == tuple(exported.graph.line_values["prompt_tokens"].shape)
    assert exported.graph.inputs[0].shape[0] == -1  # dynamic batch


@pytest.mark.slow
def test_a_backbone_that_merges_its_tokens_exports_the_same(
    tmp_path: Path,
    random_parts: Callable[..., ModelInputs],
    tiny_line_model: Callable[..., LineModel],
) -> None:
    """`tinym` (image tokens merged 2x2 after the second block): the graph equals torch and
    parses on both TensorRT versions, like `tiny`'s."""
    model = tiny_line_model(image_template=True, size="tinym")
    cfg = model.config
    graph = export_line_model(model, random_parts(cfg, 2, 0).as_kwargs(), tmp_path / "m.onnx")
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    e = Exported(model, graph, session)
    parts = random_parts(cfg, 4, seed=1)
    prompt = graph.line_values["prompt_tokens"]
    got, want = _run(e, parts, prompt), _torch(e, parts, prompt)
    for name in OUTPUTS:
        np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=0, err_msg=name)
    lists = json.loads(OPS_FILE.read_text(encoding="utf-8"))
    supported = [frozenset(lists[v]["supported"]) for v in ("tensorrt_8.5", "tensorrt_10.x")]
    max_opset = lists["tensorrt_8.5"]["max_opset"]
    report = check_graph(onnx.load(str(graph.path)), supported, max_opset=max_opset)
    assert report.ok, report.problems


def test_check_graph_reports_layer_norm_and_high_opset(tmp_path: Path) -> None:
    node = onnx.helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=-1)
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.numpy_helper.from_array(np.ones(4, np.float32), "s")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    report = check_graph(model, [frozenset({"Add"})], max_opset=17)
    assert not report.ok
    assert any("LayerNormalization" in p for p in report.problems)
    assert any("opset 18" in p for p in report.problems)
