"""Export a line model's static form to one ONNX graph that TensorRT 8.5 and 10.x both parse.

The graph (opset 17, batch axis dynamic) takes the part inputs (`image`, `spectrum`,
`image_present`, `vibration_present`) and the line's own tensors (its prompt tokens) as inputs,
so another line with the same heads runs on the same TensorRT engine with different values.
The line's tensor values are written beside the graph (`<graph>.line.npz`) and everything a
runtime needs to feed the graph and judge its outputs goes into `<graph>.json`
(`ExportMetadata`): input names and shapes, image normalization, spectrum settings, threshold,
class names and the graph's sha256.

TensorRT 8.5 has no `LayerNormalization` and no RMSNorm op: both norms are written here as
primitive ops (ReduceMean, Sqrt, Div, Mul, Add), whatever the model calls.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

EXPORT_OPSET = 17
"""TensorRT 8.5 (JetPack 5, the last for AGX Xavier) parses operators up to opset 17."""

PART_INPUTS: tuple[str, ...] = ("image", "spectrum", "image_present", "vibration_present")
"""Per-part graph inputs: the fields of `models.inputs.ModelInputs`, batch axis first."""

OUTPUTS: tuple[str, ...] = ("defect_score", "class_probs", "heatmap", "anomaly_score")
"""Graph outputs: the fields of `models.outputs.Prediction`, in this order."""

METADATA_FORMAT = 1
FORBIDDEN_OPS: frozenset[str] = frozenset({"LayerNormalization", "RMSNormalization"})


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, shape (`-1` = the batch axis) and numpy dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass
class ExportMetadata:
    """What a runtime needs beside the graph (written as `<graph>.json`)."""

    line: str
    version: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    line_inputs: list[str]  # inputs whose values come from `line_tensors`, not from the part
    line_tensors: str  # file name of the line's input values (.npz), beside the metadata
    normalization: dict[str, Any]  # {"mean": [3], "std": [3], "image_size": S, "range": "0..1"}
    spectrum: dict[str, Any]  # SpectrumConfig fields
    threshold: float
    classes: list[str]
    model_sha256: str  # sha256 of the graph (or engine) file this metadata sits beside
    source_sha256: dict[str, str] = field(default_factory=dict)  # weights the graph came from
    opset: int = EXPORT_OPSET
    precision: str = "fp32"
    runtime: dict[str, str] = field(default_factory=dict)  # e.g. {"tensorrt": "10.3.0"}
    format: int = METADATA_FORMAT
    # pose alignment the frames need before the graph (line.json "align"; empty: none): a
    # runtime outside inspect-app must register each frame onto this reference first
    align: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [asdict(s) | {"shape": list(s.shape)} for s in self.inputs]
        data["outputs"] = [asdict(s) | {"shape": list(s.shape)} for s in self.outputs]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "metadata") -> ExportMetadata:
        if data.get("format") != METADATA_FORMAT:
            msg = f"{source}: metadata format {data.get('format')!r}; expected {METADATA_FORMAT}"
            raise ValueError(msg)
        try:
            values = dict(data)
            values["inputs"] = [
                TensorSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in data["inputs"]
            ]
            values["outputs"] = [
                TensorSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in data["outputs"]
            ]
            return cls(**values)
        except (KeyError, TypeError) as exc:
            msg = f"{source}: not an export metadata file ({exc})"
            raise ValueError(msg) from exc

    def write(self, path: Path) -> Path:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    def input_spec(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        msg = f"graph has no input {name!r}; its inputs are {[s.name for s in self.inputs]}"
        raise KeyError(msg)


def metadata_path(model_file: str | Path) -> Path:
    """`model.onnx` -> `model.onnx.json`; `model.engine` -> `model.engine.json`."""
    model_file = Path(model_file)
    return model_file.with_name(model_file.name + ".json")


def read_metadata(model_file: str | Path) -> ExportMetadata:
    """The metadata beside an exported graph or engine; ValueError naming the file if absent."""
    path = metadata_path(model_file)
    if not path.is_file():
        msg = (
            f"{path} not found: every exported model needs its metadata beside it; "
            "re-run `inspect-app export --line L` (and build_engine.py for an engine)"
        )
        raise ValueError(msg)
    return ExportMetadata.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))


def read_line_tensors(model_file: str | Path, meta: ExportMetadata) -> dict[str, np.ndarray]:
    """The line's input values (`meta.line_tensors`, an .npz beside the metadata)."""
    path = Path(model_file).parent / meta.line_tensors
    if not path.is_file():
        msg = f"{path} not found: the line tensors {meta.line_inputs} of {model_file} live there"
        raise ValueError(msg)
    with np.load(path, allow_pickle=False) as npz:
        values = {name: np.asarray(npz[name]) for name in npz.files}
    missing = [n for n in meta.line_inputs if n not in values]
    if missing:
        msg = f"{path} lacks the line inputs {missing}"
        raise ValueError(msg)
    return values


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- norms as primitive ops ----------------------------------------------------------------


def _norm_axes(normalized_shape: Sequence[int]) -> list[int]:
    return list(range(-len(normalized_shape), 0))


def _rms_norm_symbolic(g: Any, x: Any, normalized_shape: Any, weight: Any, eps: Any) -> Any:
    """aten::rms_norm -> x / sqrt(mean(x^2) + eps) * weight, as opset-17 primitives."""
    from torch.onnx import symbolic_helper as sh

    shape = sh._get_const(normalized_shape, "is", "normalized_shape")
    eps_value = sh._get_const(eps, "f", "eps") if not sh._is_none(eps) else 1e-6
    mean_sq = g.op("ReduceMean", g.op("Mul", x, x), axes_i=_norm_axes(shape), keepdims_i=1)
    denom = g.op("Sqrt", g.op("Add", mean_sq, g.op("Constant", value_t=torch.tensor(eps_value))))
    y = g.op("Div", x, denom)
    return y if sh._is_none(weight) else g.op("Mul", y, weight)


def _layer_norm_symbolic(
    g: Any, x: Any, normalized_shape: Any, weight: Any, bias: Any, eps: Any, cudnn: Any
) -> Any:
    """aten::layer_norm -> (x - mean) / sqrt(var + eps) * weight + bias, as primitives."""
    from torch.onnx import symbolic_helper as sh

    del cudnn
    shape = sh._get_const(normalized_shape, "is", "normalized_shape")
    eps_value = sh._get_const(eps, "f", "eps")
    axes = _norm_axes(shape)
    centered = g.op("Sub", x, g.op("ReduceMean", x, axes_i=axes, keepdims_i=1))
    var = g.op("ReduceMean", g.op("Mul", centered, centered), axes_i=axes, keepdims_i=1)
    denom = g.op("Sqrt", g.op("Add", var, g.op("Constant", value_t=torch.tensor(eps_value))))
    y = g.op("Div", centered, denom)
    if not sh._is_none(weight):
        y = g.op("Mul", y, weight)
    if not sh._is_none(bias):
        y = g.op("Add", y, bias)
    return y


def _register_primitive_norms() -> None:
    torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm_symbolic, EXPORT_OPSET)
    torch.onnx.register_custom_op_symbolic("aten::layer_norm", _layer_norm_symbolic, EXPORT_OPSET)


# --- export --------------------------------------------------------------------------------


class _PositionalGraph(nn.Module):
    """Positional tensors in `names` order -> the Prediction fields as a tuple (`OUTPUTS`)."""

    def __init__(self, static_form: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.static_form = static_form
        self.names = list(names)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        prediction = self.static_form(**dict(zip(self.names, tensors, strict=True)))
        return tuple(getattr(prediction, n) for n in OUTPUTS)


@dataclass(frozen=True)
class GraphReport:
    """What `check_graph` found: the opset, op counts and every problem (empty = deployable)."""

    opset: int
    op_counts: dict[str, int]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def export_static_graph(
    static_form: nn.Module,
    part_inputs: Mapping[str, torch.Tensor],
    line_inputs: Mapping[str, torch.Tensor],
    out: str | Path,
) -> Path:
    """Trace `static_form(**part_inputs, **line_inputs) -> Prediction` into an ONNX graph.

    Part inputs keep a dynamic batch axis (axis 0); line inputs are fixed-shape. The graph is
    written under a temporary name and renamed, so a reader never sees half a file.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = [*part_inputs, *line_inputs]
    args = tuple(part_inputs[n] for n in part_inputs) + tuple(line_inputs[n] for n in line_inputs)
    dynamic = {n: {0: "batch"} for n in (*part_inputs, *OUTPUTS)}
    _register_primitive_norms()
    tmp = out.with_name(f".{out.name}.tmp")
    graph = _PositionalGraph(static_form, names).eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is the one that writes opset 17 (the dynamo exporter starts
        # at 18 and its down-conversion fails on these graphs); its deprecation notice is noise.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            args,
            str(tmp),
            input_names=names,
            output_names=list(OUTPUTS),
            dynamic_axes=dynamic,
            opset_version=EXPORT_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    tmp.replace(out)
    return out


def graph_specs(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs of a graph (a symbolic axis becomes -1)."""

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        t = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        return TensorSpec(value.name, shape, dtype)

    initializers = {i.name for i in model.graph.initializer}
    inputs = [spec(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [spec(v) for v in model.graph.output]


def check_graph(
    model: onnx.ModelProto, supported_ops: Sequence[frozenset[str]] = (), max_opset: int = 17
) -> GraphReport:
    """Opset, forbidden ops (LayerNormalization), ops outside each `supported_ops` list, and
    TopK whose K is not a constant (TensorRT 8.5 requires an initializer)."""
    onnx.checker.check_model(model)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    ops = Counter(n.op_type for n in model.graph.node)
    problems: list[str] = []
    if opset > max_opset:
        problems.append(f"opset {opset} > {max_opset}")
    problems += [f"forbidden op {op} ({ops[op]}x)" for op in sorted(FORBIDDEN_OPS & set(ops))]
    for i, allowed in enumerate(supported_ops):
        outside = sorted(set(ops) - allowed)
        if outside:
            problems.append(f"ops outside supported list {i}: {outside}")
    constants = {i.name for i in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output
    }
    for node in model.graph.node:
        if node.op_type == "TopK" and node.input[1] not in constants:
            problems.append(f"TopK {node.name} has a computed K; TensorRT 8.5 needs a constant")
    return GraphReport(opset=opset, op_counts=dict(ops), problems=problems)


# --- the line model ------------------------------------------------------------------------


class StaticLineGraph(nn.Module):
    """A line model with its prompt tokens as an input (P, D), broadcast over the batch."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        image: torch.Tensor | None = None,
        spectrum: torch.Tensor | None = None,
        image_present: torch.Tensor | None = None,
        vibration_present: torch.Tensor | None = None,
        prompt_tokens: torch.Tensor | None = None,
    ) -> Any:
        ref = image if image is not None else spectrum
        assert ref is not None  # export always traces with at least one modality
        prompts = None
        if prompt_tokens is not None:
            prompts = prompt_tokens.unsqueeze(0).expand(ref.shape[0], -1, -1)  # (B, P, D)
        return self.model(image, spectrum, image_present, vibration_present, prompts)


@dataclass
class ExportedGraph:
    """A written graph: its path, specs, and the line's input values (name -> array)."""

    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    line_values: dict[str, np.ndarray]


def line_values(model: nn.Module) -> dict[str, torch.Tensor]:
    """The line's own graph inputs: its prompt tokens (P, D) for a prompt-tuned line."""
    prompt = getattr(model, "prompt", None)
    return {} if prompt is None else {"prompt_tokens": prompt.detach().clone()}


def _set_static_moe(model: nn.Module, static: bool) -> None:
    for module in model.modules():
        setter = getattr(module, "set_static_moe", None)
        if callable(setter):
            setter(static)


def export_line_model(
    model: nn.Module, part_example: Mapping[str, torch.Tensor | None], out: str | Path
) -> ExportedGraph:
    """Export a `LineModel` (static MoE, prompt tokens as an input) to `out`.

    `part_example` is a `ModelInputs.as_kwargs()` batch; inputs that are None (a modality the
    line does not use) are left out of the graph.
    """
    parts = {k: v for k, v in part_example.items() if v is not None}
    values = line_values(model)
    _set_static_moe(model, True)
    try:
        path = export_static_graph(StaticLineGraph(model).eval(), parts, values, out)
    finally:
        _set_static_moe(model, False)
    inputs, outputs = graph_specs(onnx.load(str(path), load_external_data=False))
    return ExportedGraph(
        path=path,
        inputs=inputs,
        outputs=outputs,
        line_values={k: v.numpy() for k, v in values.items()},
    )
