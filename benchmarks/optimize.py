"""Size, latency and output error of the optimized line graphs against fp32, and graph FLOPs.

    python benchmarks/optimize.py --flops            # GFLOP per part of the exported graph
    python benchmarks/optimize.py                    # fp32 / fp16 / int8 / 4-bit table

Uses a `tiny` line model with a freshly initialized backbone (weights random, so the table
shows size, speed and numerical error, not accuracy; AUROC needs a taught line).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch


def graph_flops(path: Path) -> dict[str, int]:
    """MatMul/Gemm/Conv FLOPs (2 per multiply-add) at batch 1, from symbolic shape inference."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = onnx.load(str(path))
    for value in [*model.graph.input, *model.graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_value = 1
    model = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]
    }
    shapes |= {i.name: list(i.dims) for i in model.graph.initializer}
    flops: dict[str, int] = {}
    for node in model.graph.node:
        out = shapes.get(node.output[0])
        if node.op_type in ("MatMul", "Gemm"):
            k = shapes[node.input[0]][-1]
        elif node.op_type == "Conv":
            k = int(np.prod(shapes[node.input[1]][1:]))
        else:
            continue
        flops[node.op_type] = flops.get(node.op_type, 0) + 2 * k * int(np.prod(out))
    return flops


def _export(work: Path) -> tuple[Path, dict[str, np.ndarray]]:
    from models.backbone import InspectBackbone
    from models.config import BackboneConfig
    from models.export import export_line_model
    from models.inputs import ModelInputs
    from models.line_model import LineModel, LineModelSettings

    torch.manual_seed(0)
    cfg = BackboneConfig.named("tiny")
    model = LineModel(InspectBackbone(cfg).eval(), LineModelSettings(classes=["a", "b"])).eval()
    s = cfg.image_size
    n_bins = cfg.num_spectrum_tokens * cfg.spectrum_patch
    parts = ModelInputs(
        image=torch.randn(4, 3, s, s),
        spectrum=torch.randn(4, 2, n_bins),
        image_present=torch.ones(4, dtype=torch.bool),
        vibration_present=torch.ones(4, dtype=torch.bool),
    )
    graph = export_line_model(model, parts.as_kwargs(), work / "fp32.onnx")
    feed = {k: v.numpy() for k, v in parts.as_kwargs().items() if v is not None}
    return graph.path, feed | graph.line_values


def _latency_ms(path: Path, feed: dict[str, np.ndarray], runs: int = 20) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)) / len(feed["image"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flops", action="store_true", help="only count the graph's FLOPs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from inspect_app import optimize

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp32, feed = _export(work)
        flops = graph_flops(fp32)
        print(f"graph FLOPs per part: {sum(flops.values()) / 1e9:.2f} GFLOP {flops}")
        if args.flops:
            return
        variants = {
            "fp32": fp32,
            "fp16": optimize.convert_fp16(fp32, work / "fp16.onnx"),
            "int8 dynamic": optimize.quantize_int8_dynamic(fp32, work / "int8d.onnx"),
            "int8 static": optimize.quantize_int8_static(fp32, work / "int8s.onnx", [feed]),
        }
        if optimize.has_matmul_nbits():
            variants["4-bit MatMulNBits"] = optimize.quantize_4bit(fp32, work / "q4.onnx")
        reference = ort.InferenceSession(str(fp32)).run(None, feed)
        print("| graph | size (MiB) | CPU ms/part (1 thread) | max |out - fp32| |")
        print("| --- | --- | --- | --- |")
        for name, path in variants.items():
            got = ort.InferenceSession(str(path)).run(None, feed)
            err = max(float(np.abs(a - b).max()) for a, b in zip(got, reference, strict=True))
            size = path.stat().st_size / 2**20
            print(f"| {name} | {size:.1f} | {_latency_ms(path, feed):.1f} | {err:.1e} |")


if __name__ == "__main__":
    main()
