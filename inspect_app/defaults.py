"""Defaults and choices the command line shows in `--help`, kept apart from the modules that
use them (those load torch): building the parser imports only this."""

from __future__ import annotations

DEFAULT_TARGET_MISS_RATE = 0.005
# a line taught from good parts only cannot measure a miss rate: its threshold rejects this
# share of the good adapt parts out-of-fold (`metrics.threshold_for_false_reject_rate`); on the
# five held-out synthetic lines (fused, 3 seeds) it missed 20 % of the defects at 3.8 %
# false-reject where the highest good score (the rule before) missed 36 % at 1.3 %; with the
# good parts scored by the line's own memories, 2 seeds: 18.7 % at 4.2 % (21.0 % at 3.5 % before
# on those seeds; docs/adapt.md, step 7)
DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE = 0.05
# how frames are registered onto the line's reference part (`inspect_app.align`)
ALIGN_MODES = ("auto", "on", "off")
# a hot folder's file is read once its size has held this long (`inspect_app.sources.HotFolder`)
HOT_FOLDER_SETTLE_S = 0.5
# parts in a row that could not be inspected (a camera frozen or covered, a sensor unplugged)
# before `serve`'s /healthz says unhealthy and the console shows "not inspecting": every such
# part is rejected, so the line is safe, but it inspects nothing
FAULT_RUN_UNHEALTHY = 20
# what runs a line model: `serve --backend`, `evaluate --backend`, `calibrate --backend`
BACKEND_CHOICES = ("torch", "onnxruntime", "tensorrt")
# the graphs `inspect-app export` writes (`--fp16`, `--int8`) and onnxruntime runs: `serve
# --precision`, `evaluate --precision`, `calibrate --precision`
PRECISIONS = ("fp32", "fp16", "int8")


def exported_graph_name(precision: str = "fp32") -> str:
    """The file name of a version's exported graph of that precision: model.onnx for fp32."""
    if precision not in PRECISIONS:
        msg = f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}"
        raise ValueError(msg)
    return "model.onnx" if precision == "fp32" else f"model.{precision}.onnx"


ENGINE_FILE = "model.engine"
"""A version's TensorRT engine, built on the Jetson from its exported graph."""


def precision_problem(backend: str, precision: str) -> str | None:
    """Why a graph of `precision` cannot run on `backend` (None when it can)."""
    if precision == "fp32" or backend == "onnxruntime":
        return None
    runs = "its engine" if backend == "tensorrt" else "the line's own weights"
    return (
        f"--precision {precision} picks an exported graph for --backend onnxruntime; "
        f"{backend} runs {runs}"
    )
