"""End-to-end throughput of the inspection pipeline, per backend, and a plain ResNet-18 for scale.

Prints, in one run:
  * parts/s end to end (decode → spectra → model → decision → defect log in SQLite) for the torch
    and onnxruntime backends on the demo line's 300-part stream, with p50/p95 per stage;
  * a torchvision ResNet-18 (random weights) in onnxruntime alone at the line's image size;
  * with --soak N: N parts through the onnxruntime pipeline (the stream replayed in a loop) with
    the process's resident memory every N/10 parts (flat memory = no leak).

    python -m benchmarks.throughput                     # HOME: $INSPECT_APP_HOME or the default
    python -m benchmarks.throughput --soak 10000 --backends onnxruntime
    python -m benchmarks.throughput --line s101 --stream DIR   # a line taught in HOME, on DIR

The demo line must be taught in HOME (`inspect-app demo` does it; this script does it too);
another line (--line) must already be taught there, and --stream names its parts' folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from inspect_app.commands.demo import LINE, ensure_line_model, sample_line
from inspect_app.home import resolve_home
from inspect_app.runtime import STAGES, StatsSnapshot
from inspect_app.service import InspectionService, ServeOptions, load_line
from sensors.dataset import LineDataset
from sensors.sample import Sample


def rss_mib() -> float:
    """Resident memory of this process now (Linux /proc), in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class LoopedStream:
    """The stream replayed `parts` times over, each pass with new part ids (a long shift)."""

    live = False

    def __init__(self, folder: Path, parts: int) -> None:
        self.dataset = LineDataset.open(folder)
        self.parts = parts

    def __iter__(self) -> Iterator[Sample]:
        n = len(self.dataset)
        for k in range(self.parts):
            sample = self.dataset.load(k % n, strict=False)
            sample.part_id = f"{sample.part_id}~{k // n}"
            yield sample


def run_pipeline(
    home: Path,
    stream: Path,
    backend: str,
    batch: int,
    threads: int,
    parts: int | None,
    soak_every: int | None = None,
    line: str = LINE,
) -> tuple[StatsSnapshot, list[str]]:
    torch.set_num_threads(threads)
    loaded = load_line(home, line, backend, threads=threads)
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        options = ServeOptions(
            home=Path(tmp),
            line=line,
            source=str(stream),
            db_url=f"sqlite:///{tmp}/bench.db",
            backend=backend,
            http=None,
            batch_size=batch,
            max_parts=parts,
        )
        memory: list[tuple[int, float]] = []
        next_mark = [0]

        def committed(done: list[object]) -> None:
            del done
            count = service.pipeline.stats.snapshot().parts
            if soak_every and count >= next_mark[0]:
                memory.append((count, rss_mib()))
                next_mark[0] += soak_every

        service = InspectionService.build(options, on_committed=committed, loaded=loaded)
        if soak_every and parts:
            service.pipeline.source = LoopedStream(stream, parts)
        service.run(install_signals=False)
        snap = service.pipeline.stats.snapshot()
        if memory:
            memory.append((snap.parts, rss_mib()))
            notes.append(
                "resident memory (parts → MiB): " + ", ".join(f"{p}→{m:.0f}" for p, m in memory)
            )
            after_warmup = [m for p, m in memory if p >= parts // 10] if parts else []
            if after_warmup:
                notes.append(
                    f"growth after the first 10 %: {after_warmup[-1] - after_warmup[0]:+.1f} MiB"
                )
    return snap, notes


def print_stats(name: str, snap: StatsSnapshot) -> None:
    v = snap.verdicts
    print(
        f"\n{name}: {snap.parts} parts, {snap.parts_per_s:.1f} parts/s end to end "
        f"(PASS {v['PASS']}, FAIL {v['FAIL']}, FAULT {v['FAULT']}, "
        f"dropped {sum(snap.drops.values())})"
    )
    print(f"  {'stage':<11}{'p50 ms':>9}{'p95 ms':>9}   (per part; batch stages count the batch)")
    for stage in STAGES:
        s = snap.latency[stage]
        if s.p50_ms is not None and s.p95_ms is not None:
            print(f"  {stage:<11}{s.p50_ms:9.1f}{s.p95_ms:9.1f}")


def resnet18_onnxruntime(size: int, batch: int, threads: int, seconds: float = 5.0) -> float:
    """Images/s of a torchvision ResNet-18 (random weights) in onnxruntime at `size` px."""
    import onnxruntime as ort
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.onnx"
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, size, size),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
            opset_version=17,
            dynamo=False,
        )
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
        session.run(None, {"x": x})
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            session.run(None, {"x": x})
            n += batch
        return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default=None, help="HOME with the demo line (taught if missing)")
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--batch", type=int, default=8, help="parts per model call")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--parts", type=int, default=None, help="parts of the stream (default all)")
    parser.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="N",
        help="also run N parts (looped stream) with onnxruntime, measuring memory",
    )
    parser.add_argument("--line", default=LINE, help=f"a line taught in HOME (default {LINE})")
    parser.add_argument(
        "--stream", type=Path, default=None, help="its parts' folder (needed with --line)"
    )
    args = parser.parse_args()

    home = resolve_home(args.home)
    if args.line == LINE:
        data = sample_line(home)
        ensure_line_model(home, data / "adapt", readapt=False)
        stream = args.stream or data / "stream"
    elif args.stream is None:
        parser.error(f"--line {args.line}: give its parts' folder with --stream DIR")
    else:
        stream = args.stream
    from inspect_app.lines import read_card, version_dir

    card = read_card(version_dir(home, args.line))
    print(
        f"line {args.line} ({', '.join(card.modalities)}; image {card.image_size} px), "
        f"{os.cpu_count()} CPUs, {args.threads} threads, batch {args.batch}"
    )
    for backend in [b for b in args.backends.split(",") if b]:
        snap, _ = run_pipeline(
            home, stream, backend, args.batch, args.threads, args.parts, line=args.line
        )
        print_stats(backend, snap)
    for batch in (1, args.batch):
        rate = resnet18_onnxruntime(card.image_size, batch, args.threads)
        print(
            f"\nResNet-18 alone in onnxruntime, {card.image_size} px, batch {batch}: "
            f"{rate:.1f} images/s"
        )
    if args.soak:
        snap, notes = run_pipeline(
            home,
            stream,
            "onnxruntime",
            args.batch,
            args.threads,
            args.soak,
            soak_every=max(1, args.soak // 10),
        )
        print_stats(f"soak onnxruntime ({args.soak} parts)", snap)
        for note in notes:
            print(f"  {note}")


if __name__ == "__main__":
    main()
