"""`inspect-app export`: a line's deployable graph (ONNX) with its metadata beside it."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from inspect_app.lines import LineCard

HELP = "write a line's deployable ONNX graph (+ metadata) for onnxruntime or TensorRT"
DESCRIPTION = """\
Export line L's active model as one static ONNX graph (opset 17, no LayerNormalization, MoE
with a constant top-k) that onnxruntime runs and TensorRT 8.5 (JetPack 5) and 10.x (JetPack 6)
parse. The line's prompt tokens are a graph input, so lines with the same heads share an
engine. Beside the graph: FILE.json (input names and shapes, normalization, spectrum settings,
threshold, class names, sha256) and the line's tensors (.line.npz). The graph is checked
against torch with onnxruntime before the command succeeds.

  --fp16   float16 weights, float32 inputs/outputs (GPU onnxruntime; TensorRT makes its
           own FP16 from the fp32 graph): model.fp16.onnx
  --int8   int8 dynamic quantization for the onnxruntime CPU path: model.int8.onnx
The fp16 / int8 graphs sit beside model.onnx; `serve`, `evaluate` and `calibrate` run them
with --backend onnxruntime --precision fp16|int8 (evaluate first: quantization moves scores
differently on each line).

Example:
  inspect-app export --line bearings --format onnx
  inspect-app export --line bearings --format onnx --calib-data parts/ --calib-parts 200
then on the Jetson: python3 deploy/jetson/build_engine.py --onnx .../model.onnx --precision int8
"""


@dataclass(frozen=True)
class ExportFormat:
    """One row of the export table: the single source of truth for `--format`."""

    name: str
    suffix: str
    what: str


FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat("onnx", ".onnx", "ONNX opset 17 for onnxruntime and TensorRT"),
}
FP32_TOLERANCE = 1e-4
REDUCED_TOLERANCE = 5e-2  # fp16 / int8 graphs: checked for gross errors only


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--line", required=True, help="the line to export")
    parser.add_argument(
        "--format",
        default="onnx",
        metavar="FMT",
        help=f"export format: {', '.join(FORMATS)} (default onnx)",
    )
    parser.add_argument("--out", metavar="FILE", help="graph file (default: in the version folder)")
    parser.add_argument("--version", help="line version to export (default: the active one)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="float16 weights")
    precision.add_argument("--int8", action="store_true", help="int8 dynamic quantization (CPU)")
    parser.add_argument(
        "--calib-data",
        metavar="DIR",
        help="dataset whose parts become FILE.calib.npz (TensorRT INT8)",
    )
    parser.add_argument("--calib-parts", type=int, default=200, help="parts to calibrate on")


def resolve_format(name: str) -> ExportFormat:
    """The table row for `name`; a ValueError with the closest match for a typo."""
    if name in FORMATS:
        return FORMATS[name]
    match = difflib.get_close_matches(name.lower(), FORMATS, n=1)
    hint = f"; did you mean {match[0]!r}?" if match else ""
    msg = f"unknown export format {name!r} (known: {', '.join(FORMATS)}){hint}"
    raise ValueError(msg)


def _calibration_feeds(
    data: Path, card: LineCard, parts: int, desc: str = "calibration parts"
) -> dict[str, np.ndarray]:
    from tqdm import tqdm

    from inspect_app.lines import line_window_s
    from inspect_app.preprocess import prepare_batch
    from sensors.camera import FrameFormat
    from sensors.dataset import LineDataset

    dataset = LineDataset.open(
        data,
        window_s=line_window_s(None, card),  # the windows the line was taught on
        frames=FrameFormat.of_line(card.image_bits, card.roi),
    )
    count = min(parts, len(dataset))
    chunks: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, count, 16), desc=desc, unit="batch", disable=count <= 16):
        samples = [dataset.load(i, strict=False) for i in range(start, min(start + 16, count))]
        samples = [s for s in samples if s.fault is None]
        if not samples:
            continue
        for name, value in prepare_batch(samples, card, partial=True).as_kwargs().items():
            if value is not None:
                chunks.setdefault(name, []).append(value.numpy())
    if not chunks:
        msg = f"no readable parts in {data} to calibrate on"
        raise ValueError(msg)
    return {k: np.concatenate(v) for k, v in chunks.items()}


def run(args: argparse.Namespace) -> int:
    import torch

    from inspect_app.defaults import exported_graph_name
    from inspect_app.home import resolve_home
    from inspect_app.lines import load_line_model, version_dir
    from inspect_app.service import example_inputs
    from models.export import (
        OUTPUTS,
        ExportMetadata,
        export_line_model,
        file_sha256,
        metadata_path,
    )
    from models.inputs import IMAGE_MEAN, IMAGE_STD

    try:
        fmt = resolve_format(args.format)
        home = resolve_home(args.home)
        folder = version_dir(home, args.line, args.version)
        model, card, folder = load_line_model(home, args.line, folder.name)
    except ValueError as exc:
        print(f"inspect-app export: {exc}", file=sys.stderr)
        return 2
    precision = "fp16" if args.fp16 else "int8" if args.int8 else "fp32"
    stem = exported_graph_name(precision).removesuffix(".onnx")
    out = Path(args.out) if args.out else folder / f"{stem}{fmt.suffix}"
    line_file = out.with_name(f"{out.name.removesuffix(fmt.suffix)}.line.npz")
    # written beside the final files under hidden names, checked, then renamed over them: a
    # graph that fails the check never replaces the one a line may be running (serve reads
    # model.onnx) and leaves nothing behind
    staged = out.with_name(f".{out.stem}.staged{fmt.suffix}")
    staged_line = out.with_name(f".{out.stem}.staged.line.npz")
    fp32_path = staged if precision == "fp32" else out.with_name(f".{out.stem}.fp32{fmt.suffix}")
    example = example_inputs(card, batch=2)
    try:
        with torch.no_grad():
            graph = export_line_model(model, example.as_kwargs(), fp32_path)
        np.savez(str(staged_line), **graph.line_values)  # type: ignore[arg-type]
        if precision != "fp32":
            from inspect_app import optimize

            convert = optimize.convert_fp16 if args.fp16 else optimize.quantize_int8_dynamic
            convert(fp32_path, staged)
        # fp32 must agree on every output; a reduced-precision graph on the decision, the
        # defect score in 0..1 (its unbounded anomaly score, a few hundred on random inputs,
        # cannot keep an absolute tolerance; its class probabilities and heat-map move more
        # where a part sits between two readings: reported below, not refused)
        judged = OUTPUTS if precision == "fp32" else ("defect_score",)
        diffs, _ = _verify(staged, model, example.as_kwargs(), graph.line_values)
        check_data, parts = _check_parts(args, card)
        on_parts: dict[str, float] = {}
        alike: int | None = None
        if parts:  # random inputs saturate a line's outputs; its own parts do not
            on_parts, alike = _verify(staged, model, parts, graph.line_values, random=False)
        worst = max(d[k] for d in (diffs, on_parts) for k in judged if k in d)
        tolerance = FP32_TOLERANCE if precision == "fp32" else REDUCED_TOLERANCE
        if worst > tolerance:
            kept = f"; {out} is left as it was" if out.exists() else ""
            print(
                f"inspect-app export: the {precision} graph differs from the torch model by "
                f"{worst:.2e} (> {tolerance:.0e}); not deploying it{kept}",
                file=sys.stderr,
            )
            return 1
        os.replace(staged, out)
        os.replace(staged_line, line_file)
    finally:
        for leftover in (staged, staged_line, fp32_path):
            leftover.unlink(missing_ok=True)
    meta = ExportMetadata(
        line=args.line,
        version=folder.name,
        inputs=graph.inputs,
        outputs=graph.outputs,
        line_inputs=list(graph.line_values),
        line_tensors=line_file.name,
        normalization={
            "mean": list(IMAGE_MEAN),
            "std": list(IMAGE_STD),
            "image_size": card.image_size,
            "input_range": "RGB scaled to 0..1, then (x - mean) / std",
            # 16-bit frames fill this many bits (None: 8-bit, or 16 at full scale)
            "image_bits": card.image_bits,
            # [x, y, w, h] of the camera's frame, cropped before anything else (None: whole)
            "roi": card.roi,
        },
        spectrum=dict(card.spectrum),
        align=dict(card.align),
        threshold=float(card.threshold),
        classes=list(card.classes),
        model_sha256=file_sha256(out),
        source_sha256={"weights": file_sha256(folder / "weights.safetensors")},
        precision=precision,
    )
    meta.write(metadata_path(out))
    if args.calib_data:
        calib = out.with_name(f"{out.name.removesuffix(fmt.suffix)}.calib.npz")
        feeds = _calibration_feeds(Path(args.calib_data), card, args.calib_parts)
        np.savez(str(calib), **feeds)  # type: ignore[arg-type]
        print(f"calibration parts: {calib}")
    print(f"exported {out} ({precision}; max |onnxruntime - torch| = {worst:.1e})")
    if on_parts:
        n = len(next(iter(parts.values())))
        print(
            f"checked on random inputs and {n} parts of {check_data}: defect score within "
            f"{on_parts['defect_score']:.1e} of torch, heat-map {on_parts['heatmap']:.1e}, "
            f"class probabilities {on_parts['class_probs']:.1e}"
            + ("" if alike is None else f" (the same class named on {alike} of {n})")
        )
    else:
        print(
            "checked on random inputs only (they drive the outputs to 0 or 1): the line's adapt "
            "data is not here; --calib-data DIR checks on its parts"
        )
    print(f"metadata: {metadata_path(out)}")
    return 0


CHECK_PARTS = 8  # parts of the line's own data the exported graph is checked on


def _check_parts(args: argparse.Namespace, card: LineCard) -> tuple[str, dict[str, Any]]:
    """A few of the line's own parts as model inputs, from --calib-data or the folder the line
    was taught from, and where they came from; ("", {}) when neither can be read here.

    The check on random inputs alone is blind: noise drives a line's defect score, class
    probabilities and heat-map to 0 or 1, where a wrong graph and a right one agree."""
    import torch

    data = args.calib_data or card.adapt.get("data")
    if not data or not Path(data).is_dir():
        return "", {}
    try:
        feeds = _calibration_feeds(Path(data), card, CHECK_PARTS, desc="check parts")
    except (ValueError, OSError):  # DataError is a ValueError: unreadable, or not a dataset
        return "", {}
    return str(data), {k: torch.from_numpy(v) for k, v in feeds.items()}


def _verify(
    path: Path,
    model: object,
    inputs: dict[str, Any],
    line_values: dict[str, np.ndarray],
    random: bool = True,
) -> tuple[dict[str, float], int | None]:
    """Largest |onnxruntime - torch| of each output on `inputs` (model keyword arguments),
    and on how many parts the two name the same class (None for a line without classes);
    with `random`, on a seeded random batch of their shapes instead."""
    import onnxruntime as ort
    import torch

    from models.export import OUTPUTS

    kwargs = {k: v for k, v in inputs.items() if v is not None}
    if random:
        gen = torch.Generator().manual_seed(0)
        kwargs = {
            k: torch.randn(v.shape, generator=gen) if v.dtype.is_floating_point else v
            for k, v in kwargs.items()
        }
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {k: v.numpy() for k, v in kwargs.items()} | line_values
    got = session.run(list(OUTPUTS), feed)
    prompts = None
    if "prompt_tokens" in line_values:
        n = next(iter(kwargs.values())).shape[0]
        prompts = torch.from_numpy(line_values["prompt_tokens"]).unsqueeze(0).expand(n, -1, -1)
    with torch.no_grad():
        pred = model(**kwargs, prompt_tokens=prompts)  # type: ignore[operator]
    diffs = {
        n: float(np.abs(g - getattr(pred, n).numpy()).max())
        for g, n in zip(got, OUTPUTS, strict=True)
    }
    probs = got[list(OUTPUTS).index("class_probs")]
    if probs.shape[1] == 0:
        return diffs, None
    named = probs.argmax(1) == pred.class_probs.numpy().argmax(1)
    return diffs, int(named.sum())
