#!/usr/bin/env python3
"""Build a TensorRT engine from a line's ONNX graph, on the Jetson that will run it.

An engine only runs on the TensorRT version and GPU it was built with, so it is built on the
device (or in the container that runs there). Works with TensorRT 8.5 (JetPack 5.1) and 10.x
(JetPack 6.1+): the explicit-batch flag is passed only before 10, the workspace is limited with
`set_memory_pool_limit` (8.4+) and the plan is made by `build_serialized_network`.

Precision: `fp16` (default), `int8` (entropy calibration over sample parts, with a cache so a
rebuild skips calibration; layers without an INT8 kernel run in FP16) or `fp32`. `--dla-core`
puts the graph on a DLA (Xavier / Orin), falling back to the GPU layer by layer where DLA lacks
a kernel; DLA needs a fixed batch, so min = opt = max batch there.

Writes `<engine>` and `<engine>.json` (the graph's metadata with the engine's sha256, precision
and TensorRT version); the line's tensors (`*.line.npz`) are copied beside it.

Example (on the Jetson, in the inspect-app container):
    python3 deploy/jetson/build_engine.py --onnx $INSPECT_APP_HOME/lines/L/v1/model.onnx \\
        --precision int8 --calib $INSPECT_APP_HOME/lines/L/v1/model.calib.npz --batch 4
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.export import ExportMetadata, file_sha256, metadata_path, read_metadata

PRECISIONS = ("fp16", "int8", "fp32")


def trt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def network_flags(trt: Any) -> int:
    """Explicit batch is required before TensorRT 10 and deprecated (always on) from 10."""
    if trt_major(trt) >= 10:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def limit_workspace(config: Any, trt: Any, workspace_bytes: int) -> None:
    """`set_memory_pool_limit` from 8.4; `max_workspace_size` before (removed in 10)."""
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    else:
        config.max_workspace_size = workspace_bytes


def make_calibrator(
    trt: Any,
    memory: Any,
    calib_inputs: dict[str, np.ndarray],
    line_tensors: dict[str, np.ndarray],
    batch: int,
    cache: Path,
) -> Any:
    """An IInt8EntropyCalibrator2 over `calib_inputs` (name -> (N, ...) preprocessed parts)."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.count = min(len(v) for v in calib_inputs.values())
            if self.count < batch:
                msg = f"calibration needs at least {batch} parts; the file holds {self.count}"
                raise ValueError(msg)
            self.position = 0
            self.buffers: dict[str, Any] = {}
            self.stream = memory.new_stream()
            for name, value in line_tensors.items():
                self.buffers[name] = memory.alloc(value.nbytes)
                memory.to_device(self.buffers[name], np.ascontiguousarray(value), self.stream)
            memory.synchronize(self.stream)

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str], *args: Any) -> list[int] | None:
            if self.position + batch > self.count:
                return None
            for name, value in calib_inputs.items():
                host = np.ascontiguousarray(value[self.position : self.position + batch])
                if name not in self.buffers:
                    self.buffers[name] = memory.alloc(host.nbytes)
                memory.to_device(self.buffers[name], host, self.stream)
            memory.synchronize(self.stream)
            self.position += batch
            return [memory.address(self.buffers[n]) for n in names]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            cache.write_bytes(bytes(data))

    return EntropyCalibrator()


def _parse_onnx(trt: Any, builder: Any, logger: Any, onnx_path: Path) -> Any:
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        msg = f"TensorRT {trt.__version__} cannot parse {onnx_path}:\n{errors}"
        raise RuntimeError(msg)
    return network, parser


def _profile(trt: Any, builder: Any, meta: ExportMetadata, low: int, opt: int, high: int) -> Any:
    profile = builder.create_optimization_profile()
    for spec in meta.inputs:
        if spec.shape and spec.shape[0] == -1:
            rest = tuple(spec.shape[1:])
            profile.set_shape(spec.name, (low, *rest), (opt, *rest), (high, *rest))
    return profile


def build(args: argparse.Namespace, trt: Any | None = None, memory: Any | None = None) -> Path:
    """Parse, configure and build; returns the engine path. `trt`/`memory` are for tests."""
    if trt is None:
        trt = importlib.import_module("tensorrt")
    onnx_path = Path(args.onnx)
    meta = read_metadata(onnx_path)
    out = Path(args.out) if args.out else onnx_path.with_suffix(".engine")
    logger = trt.Logger(trt.Logger.VERBOSE if args.verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse_onnx(trt, builder, logger, onnx_path)
    config = builder.create_builder_config()
    limit_workspace(config, trt, args.workspace_mib << 20)

    dla = args.dla_core is not None
    low = args.batch if dla else args.min_batch
    profile = _profile(trt, builder, meta, low, args.batch, args.batch)
    config.add_optimization_profile(profile)

    if args.precision in ("fp16", "int8") or dla:
        if not builder.platform_has_fast_fp16:
            print("warning: this GPU has no fast FP16; building anyway", file=sys.stderr)
        config.set_flag(trt.BuilderFlag.FP16)
    if args.precision == "int8":
        if not args.calib:
            msg = "--precision int8 needs --calib FILE.npz (see `inspect-app export --calib-data`)"
            raise ValueError(msg)
        from inspect_app.backends.tensorrt_backend import default_device_memory
        from models.export import read_line_tensors

        with np.load(args.calib, allow_pickle=False) as npz:
            calib_inputs = {n: np.asarray(npz[n]) for n in npz.files}
        cache = Path(args.calib_cache or Path(args.calib).with_suffix(".cache"))
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = make_calibrator(
            trt,
            memory if memory is not None else default_device_memory(),
            calib_inputs,
            read_line_tensors(onnx_path, meta),
            args.batch,
            cache,
        )
        config.set_calibration_profile(profile)
    if dla:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = args.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)

    started = time.monotonic()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        msg = f"TensorRT {trt.__version__} could not build an engine from {onnx_path} (see log)"
        raise RuntimeError(msg)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(bytes(plan))
    tmp.replace(out)

    line_src = onnx_path.parent / meta.line_tensors
    if out.parent.resolve() != onnx_path.parent.resolve():
        shutil.copy2(line_src, out.parent / meta.line_tensors)
    meta.source_sha256 = {**meta.source_sha256, "onnx": file_sha256(onnx_path)}
    meta.model_sha256 = file_sha256(out)
    meta.precision = args.precision
    meta.runtime = {
        "tensorrt": str(trt.__version__),
        "dla_core": "none" if not dla else str(args.dla_core),
        "batch": f"{low}..{args.batch}",
    }
    meta.write(metadata_path(out))
    took = time.monotonic() - started
    print(f"built {out} ({args.precision}, TensorRT {trt.__version__}) in {took:.0f} s")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--onnx", required=True, help="the line graph from `inspect-app export`")
    p.add_argument("--out", help="engine file (default: the graph's name with .engine)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16")
    p.add_argument(
        "--calib", help="calibration inputs (.npz from `inspect-app export --calib-data`)"
    )
    p.add_argument("--calib-cache", help="calibration cache (default: beside --calib, .cache)")
    p.add_argument("--batch", type=int, default=4, help="max (and optimal) batch (default 4)")
    p.add_argument("--min-batch", type=int, default=1, help="smallest batch (default 1)")
    p.add_argument("--dla-core", type=int, default=None, help="run on DLA core N (0 or 1)")
    p.add_argument("--workspace-mib", type=int, default=1024, help="builder workspace (MiB)")
    p.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")
    args = p.parse_args(argv)
    if not 1 <= args.min_batch <= args.batch:
        p.error(f"need 1 <= --min-batch <= --batch; got {args.min_batch} and {args.batch}")
    return args


if __name__ == "__main__":
    build(parse_args())
