"""Smaller, faster line graphs for the CPU path: FP16 weights, INT8 and 4-bit quantization.

All take an exported fp32 line graph (`models.export`) and write a new graph beside it; the
graph's inputs and outputs stay float32 (and bool), so every backend feeds them unchanged.
- `convert_fp16`: weights and activations in float16 (TensorRT builds FP16 from the fp32 graph
  itself; this is for GPUs running onnxruntime).
- `quantize_int8_dynamic`: int8 weights, activations quantized on the fly (onnxruntime CPU).
- `quantize_int8_static`: int8 weights and activations, ranges calibrated on sample parts.
- `quantize_4bit`: 4-bit symmetric block-wise weights for MatMul (onnxruntime's `MatMulNBits`).
Weights read through an `Identity` (a weight used twice) are first read directly
(`fold_weight_identities`), so every weight MatMul is quantized.
Structured pruning of whole experts lives in `models.prune` (pure torch, before export).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """Float16 weights and compute; float32 inputs and outputs (`keep_io_types`)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save(half, str(dst))
    return Path(dst)


def fold_weight_identities(model: onnx.ModelProto) -> int:
    """Read initializers directly where the graph reads them through an `Identity`; returns how
    many Identity nodes went.

    A weight used twice (the line model runs its backbone twice: prompt-free and with prompts)
    is exported once, and its second use reads it through an Identity. Quantizers only take a
    MatMul whose weight is an initializer, so without this the second pass keeps fp32 weights
    and the quantized file holds both copies.
    """
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias = {
        n.output[0]: n.input[0]
        for n in graph.node
        if n.op_type == "Identity" and n.input[0] in initializers and n.output[0] not in outputs
    }
    if not alias:
        return 0
    keep = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in keep:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del graph.node[:]
    graph.node.extend(keep)
    return len(alias)


def _folded(src: Path, work: Path) -> Path:
    """`src` with `fold_weight_identities` applied, written under `work`."""
    model = onnx.load(str(src))
    fold_weight_identities(model)
    out = work / "folded.onnx"
    onnx.save(model, str(out))
    return out


KEEP_FP32: tuple[str, ...] = ("_memory/",)
"""Node-name parts left unquantized: the good-part memories' distance arithmetic (a squared
distance is a difference of large terms; int8 there wipes out the anomaly score)."""


def kept_nodes(path: str | Path, keep: Sequence[str] = KEEP_FP32) -> list[str]:
    """Names of the nodes whose name contains one of `keep` (passed as nodes_to_exclude)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if any(k in n.name for k in keep)]


def _preprocessed(src: Path, work: Path) -> Path:
    """onnxruntime's recommended pre-quantization pass (shape inference, graph cleanup)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = work / "pre.onnx"
    quant_pre_process(str(_folded(src, work)), str(out), skip_symbolic_shape=True)
    return out


def quantize_int8_dynamic(
    src: str | Path, dst: str | Path, keep: Sequence[str] = KEEP_FP32
) -> Path:
    """Int8 weights (per channel), activations quantized at run time; onnxruntime CPU.

    Nodes whose name contains one of `keep` stay fp32 (`KEEP_FP32`: the memories)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as work:
        pre = _preprocessed(Path(src), Path(work))
        quantize_dynamic(
            str(pre),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gemm"],
            nodes_to_exclude=kept_nodes(pre, keep),
        )
    return Path(dst)


class _FeedReader:
    """onnxruntime's CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_int8_static(
    src: str | Path,
    dst: str | Path,
    calibration: Sequence[dict[str, np.ndarray]],
    keep: Sequence[str] = KEEP_FP32,
) -> Path:
    """Int8 weights and activations (QDQ), ranges from `calibration` feeds of sample parts.

    Nodes whose name contains one of `keep` stay fp32 (`KEEP_FP32`: the memories)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not calibration:
        msg = "static INT8 quantization needs at least one calibration batch of sample parts"
        raise ValueError(msg)

    class Reader(_FeedReader, CalibrationDataReader):  # type: ignore[misc]
        pass

    with tempfile.TemporaryDirectory() as work:
        pre = _preprocessed(Path(src), Path(work))
        quantize_static(
            str(pre),
            str(dst),
            Reader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gemm", "Conv"],
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=kept_nodes(pre, keep),
        )
    return Path(dst)


def has_matmul_nbits() -> bool:
    """Whether this onnxruntime has the 4-bit weight-only quantizer (`MatMulNBits`)."""
    try:
        from onnxruntime.quantization import matmul_nbits_quantizer  # noqa: F401
    except ImportError:
        return False
    return True


def quantize_4bit(
    src: str | Path, dst: str | Path, block_size: int = 32, keep: Sequence[str] = KEEP_FP32
) -> Path:
    """4-bit symmetric block-wise weights for MatMul with constant weights (`MatMulNBits`).

    Nodes whose name contains one of `keep` stay fp32 (`KEEP_FP32`: the memories)."""
    if not has_matmul_nbits():
        msg = "this onnxruntime has no MatMulNBits quantizer (needs onnxruntime >= 1.17)"
        raise RuntimeError(msg)
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    fold_weight_identities(model)
    excluded = [n.name for n in model.graph.node if any(k in n.name for k in keep)]
    quantizer = MatMulNBitsQuantizer(
        model, block_size=block_size, is_symmetric=True, nodes_to_exclude=excluded
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    return Path(dst)


def op_count(path: str | Path, op_type: str) -> int:
    """How many nodes of `op_type` a graph has (e.g. to see MatMulNBits was applied)."""
    return sum(n.op_type == op_type for n in onnx.load(str(path)).graph.node)
