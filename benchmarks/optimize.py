"""Size, latency and accuracy of the optimized and pruned line graphs against fp32.

    python -m benchmarks.optimize --flops            # GFLOP per part of the exported graph
    python -m benchmarks.optimize --random           # size / speed / output error, random weights
    python -m benchmarks.optimize                    # AUROC table on the sample line

The default (accuracy) run teaches the sample line (`sample_data/demo-line/adapt`, prompt
method, pretrained tiny backbone) in a temporary HOME, exports it, and for fp32, fp16, int8
dynamic, int8 static (calibrated on the adapt parts), 4-bit MatMulNBits and structured pruning
(importance measured on the adapt parts) scores every part of `sample_data/demo-line/stream`
with onnxruntime (CPU, 2 threads, batches of 8): file size, latency per part, AUROC and the
AUROC change against the fp32 graph in points (a setting that loses more than 0.5 points is
marked), then what the line would do with each graph: miss and false-reject rates at the
line's own threshold, the defect class named right (defective parts of classes the line
knows), and on how many of those parts the graph names the same class as torch. `--random`
keeps the old random-weight table (numerical error only).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from tqdm import tqdm


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


MAX_LOSS_POINTS = 0.5
"""The issue's bar: a setting may lose at most this many AUROC points against fp32."""

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "sample_data" / "demo-line"


@dataclass
class Row:
    """One setting's measured numbers."""

    name: str
    size_mib: float
    ms_per_part: float
    auroc: float
    line: LineOutcome


@dataclass
class LineOutcome:
    """What the line decides with one graph, on the stream's readable parts."""

    miss_rate: float  # defective parts scored under the line's threshold
    false_reject_rate: float  # good parts at or over it
    class_accuracy: float  # defective parts of a known class, named right
    same_class: int  # ... named as torch names them
    known: int  # defective parts of a class the line knows


def line_outcome(
    scores: np.ndarray,
    probs: np.ndarray,
    torch_named: np.ndarray,
    defective: np.ndarray,
    truth: np.ndarray,
    threshold: float,
) -> LineOutcome:
    """`truth` is the class index of each part (-1: good, or a class the line never learned)."""
    fail = scores >= threshold
    known = truth >= 0
    named = probs.argmax(axis=1)
    return LineOutcome(
        miss_rate=float((~fail[defective]).mean()),
        false_reject_rate=float(fail[~defective].mean()),
        class_accuracy=float((named[known] == truth[known]).mean())
        if known.any()
        else float("nan"),
        same_class=int((named[known] == torch_named[known]).sum()),
        known=int(known.sum()),
    )


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _score(
    path: Path, feeds: dict[str, np.ndarray], line: dict[str, np.ndarray], batch: int, threads: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Defect scores and class probabilities of every part, and the median latency per part
    (ms) over the batches."""
    session = _session(path, threads)
    n = len(next(iter(feeds.values())))
    outputs = ["defect_score", "class_probs"]
    first = {k: v[:batch] for k, v in feeds.items()} | line
    session.run(outputs, first)  # warm-up
    scores, probs, times = [], [], []
    for start in range(0, n, batch):
        feed = {k: v[start : start + batch] for k, v in feeds.items()} | line
        t = time.perf_counter()
        score, prob = session.run(outputs, feed)
        times.append((time.perf_counter() - t) / len(score))
        scores.append(score)
        probs.append(prob)
    return np.concatenate(scores), np.concatenate(probs), 1000 * float(np.median(times))


def _feeds(samples: list, card: object) -> dict[str, np.ndarray]:
    from inspect_app.teach import batched_inputs

    inputs = batched_inputs(samples, card)
    return {k: v.numpy() for k, v in inputs.as_kwargs().items() if v is not None}


def _latencies(
    graphs: dict[str, tuple[Path, dict[str, np.ndarray]]],
    feeds: dict[str, np.ndarray],
    batch: int,
    threads: int,
    rounds: int = 2,
    batches: int = 8,
) -> dict[str, float]:
    """ms per part: the best over `rounds` interleaved rounds of the median over `batches`
    batches (the settings take turns, so a busy spell on a shared machine hits them alike)."""
    best: dict[str, float] = {}
    part_feeds = {k: v[: batch * batches] for k, v in feeds.items()}
    for _ in range(rounds):
        for name, (path, line) in graphs.items():
            _, _, ms = _score(path, part_feeds, line, batch, threads)
            best[name] = min(ms, best.get(name, float("inf")))
    return best


def accuracy_table(
    work: Path, batch: int, threads: int, method: str, home: Path | None = None
) -> list[Row]:
    """Teach the sample line, then measure every setting on its stream parts (see module doc).

    With `home`, a demo-line already taught there is reused (else it is taught there)."""
    import copy

    from inspect_app import optimize
    from inspect_app.lines import load_line_model
    from inspect_app.metrics import auroc
    from inspect_app.teach import (
        TeachOptions,
        adapt_rows,
        evaluate_rows,
        load_parts,
        teach_line,
    )
    from models.export import export_line_model
    from models.prune import PruneConfig, prune_line_model
    from sensors.dataset import LineDataset
    from sensors.sample import OK_LABEL

    if home is None or not (home / "lines" / "demo-line").is_dir():
        home = home or work / "home"
        taught = teach_line(
            home, "demo-line", DEMO / "adapt", TeachOptions(method=method, show_progress=False)
        )
        print(f"taught demo-line ({method}) in {taught.seconds:.0f} s", flush=True)
    model, card, folder = load_line_model(home, "demo-line")
    print(f"line: {folder.name}, method {card.method}", flush=True)
    adapt_ds = LineDataset.open(DEMO / "adapt")
    adapt_parts = [
        s for s in load_parts(adapt_ds, adapt_rows(adapt_ds), strict=False) if not s.fault
    ]
    stream_ds = LineDataset.open(DEMO / "stream")
    stream = load_parts(stream_ds, evaluate_rows(stream_ds), strict=False)
    faults = sum(s.fault is not None for s in stream)
    stream = [s for s in stream if s.fault is None]
    defective = np.array([s.label != OK_LABEL for s in stream])
    truth = np.array(
        [card.classes.index(s.label) if s.label in card.classes else -1 for s in stream]
    )
    print(
        f"stream: {len(stream)} parts ({int(defective.sum())} defective), {faults} unreadable "
        f"left out; adapt parts for calibration and importance: {len(adapt_parts)}",
        flush=True,
    )
    feeds = _feeds(stream, card)
    calib_feeds = _feeds(adapt_parts, card)
    example = {k: torch.from_numpy(v[:2]) for k, v in calib_feeds.items()}
    calibration = [
        {k: v[i : i + batch] for k, v in calib_feeds.items()}
        for i in range(0, len(adapt_parts), batch)
    ]

    def export(m: torch.nn.Module, name: str) -> tuple[Path, dict[str, np.ndarray]]:
        graph = export_line_model(m, example, work / f"{name}.onnx")
        return graph.path, graph.line_values

    fp32, line = export(model, "fp32")
    with_line = [c | line for c in calibration]
    variants: dict[str, tuple[Path, dict[str, np.ndarray]]] = {
        "fp32": (fp32, line),
        "fp16": (optimize.convert_fp16(fp32, work / "fp16.onnx"), line),
        "int8 dynamic": (optimize.quantize_int8_dynamic(fp32, work / "int8d.onnx"), line),
        "int8 static (QDQ, MinMax)": (
            optimize.quantize_int8_static(fp32, work / "int8s.onnx", with_line),
            line,
        ),
    }
    if optimize.has_matmul_nbits():
        variants["4-bit MatMulNBits (block 32)"] = (
            optimize.quantize_4bit(fp32, work / "q4.onnx"),
            line,
        )
    n_experts = model.config.n_routed_experts
    n_heads = model.config.num_attention_heads
    importance_batches = [{k: torch.from_numpy(v) for k, v in c.items()} for c in calibration]
    for experts, heads in ((2, 0), (0, 1), (2, 1)):
        pruned = copy.deepcopy(model)
        prune_line_model(pruned, importance_batches, PruneConfig(experts, heads))
        label = " + ".join(
            part
            for part in (
                f"{experts}/{n_experts} experts" if experts else "",
                f"{heads}/{n_heads} heads" if heads else "",
            )
            if part
        )
        variants[f"pruned {label} per block"] = export(pruned, f"pruned-{experts}-{heads}")

    with torch.no_grad():
        predictions = [
            model(**{k: torch.from_numpy(v[i : i + batch]) for k, v in feeds.items()})
            for i in range(0, len(stream), batch)
        ]
    torch_scores = np.concatenate([p.defect_score.numpy() for p in predictions])
    torch_named = np.concatenate([p.class_probs.numpy() for p in predictions]).argmax(axis=1)
    print(f"torch fp32 AUROC (the `evaluate` path): {auroc(torch_scores, defective):.4f}")
    aurocs, outcomes = {}, {}
    for name, (path, values) in tqdm(variants.items(), desc="AUROC", unit="graph"):
        scores, probs, _ = _score(path, feeds, values, batch, threads)
        value = auroc(scores, defective)
        assert value is not None  # the stream has good and defective parts
        aurocs[name] = value
        outcomes[name] = line_outcome(scores, probs, torch_named, defective, truth, card.threshold)
    ms = _latencies(variants, feeds, batch, threads)
    return [
        Row(name, path.stat().st_size / 2**20, ms[name], aurocs[name], outcomes[name])
        for name, (path, _) in variants.items()
    ]


def print_accuracy(rows: list[Row], batch: int, threads: int) -> None:
    base = rows[0].auroc
    print(
        f"| setting | size (MiB) | CPU ms/part ({threads} threads, batch {batch}) | AUROC "
        f"| ΔAUROC (points) | ≤ {MAX_LOSS_POINTS} points lost |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        delta = 100 * (r.auroc - base)
        ok = "yes" if -delta <= MAX_LOSS_POINTS else "**NO**"
        print(
            f"| {r.name} | {r.size_mib:.2f} | {r.ms_per_part:.1f} | {r.auroc:.4f} "
            f"| {delta:+.2f} | {ok} |"
        )
    print(f"\nat the line's threshold, on the same parts ({rows[0].line.known} defective parts")
    print("of classes the line knows for the class columns):\n")
    print("| setting | miss rate | false-reject rate | class accuracy | class as torch names it |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        o = r.line
        print(
            f"| {r.name} | {100 * o.miss_rate:.1f} % | {100 * o.false_reject_rate:.1f} % "
            f"| {100 * o.class_accuracy:.1f} % | {o.same_class} of {o.known} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flops", action="store_true", help="only count the graph's FLOPs")
    parser.add_argument(
        "--random", action="store_true", help="random-weight size/speed/error table (no AUROC)"
    )
    parser.add_argument("--batch", type=int, default=8, help="parts per onnxruntime run")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime CPU threads")
    parser.add_argument(
        "--method", default="prompt", help="how the sample line is taught (prompt, linear, lora)"
    )
    parser.add_argument(
        "--home", type=Path, help="HOME to teach demo-line into, or to reuse it from if taught"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    from inspect_app import optimize

    if not (args.flops or args.random):
        with tempfile.TemporaryDirectory() as tmp:
            torch.set_num_threads(args.threads)
            rows = accuracy_table(Path(tmp), args.batch, args.threads, args.method, args.home)
            print_accuracy(rows, args.batch, args.threads)
        return

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
