"""A burst of rejected parts at camera resolution: how soon the reject signal fires, and how
many parts per second the log stage keeps up with while it writes their snapshots.

Every part of a burst is FAIL (a bad coil, a worn tool): each one's reject signal must reach
the gate in time, and each one needs a snapshot (the heat-map over the whole frame, JPEG) before
its row is committed. The pipeline here is the real one (`inspect_app.pipeline.Pipeline`: its
queues, batches, sinks, snapshot store and SQLite log) around a backend that fails every part
at once, fed frames already decoded, so what is measured is the log stage.

Prints per frame size: parts/s through the pipeline with snapshots and without, and the reject
signal's latency (from the part leaving the source to the sink being called), median and 95th
percentile. The parts come at the line's pace (`--rate`, 30 parts/s by default); `--rate 0`
floods the pipeline, so the parts/s are its capacity.

    python -m benchmarks.reject_burst
    python -m benchmarks.reject_burst --rate 0 --sizes 2448x2048 --parts 96 --snapshot-workers 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspect_app.backends.base import BackendResult
from inspect_app.pipeline import InspectedPart, Pipeline, PipelineConfig
from inspect_app.snapshots import SnapshotStore
from inspect_app.store import DefectStore
from sensors.sample import Sample


@dataclass
class BurstCard:
    """The decision settings of a line with one defect class (what `Pipeline` reads)."""

    classes: tuple[str, ...] = ("dent",)
    threshold: float = 0.5
    image_bits: int | None = None
    roi: list[int] | None = None


class FailEverything:
    """A backend that judges every part defective at once, with a heat-map spot."""

    name = "burst"

    def predict(self, inputs: list[Sample]) -> BackendResult:
        n = len(inputs)
        heat = np.zeros((n, 16, 16), np.float32)
        heat[:, 5:8, 9:12] = 1.0
        return BackendResult(
            np.full(n, 0.9, np.float32),
            np.ones((n, 1), np.float32),
            heat,
            np.zeros(n, np.float32),
        )

    def close(self) -> None:
        return None


class SignalClock:
    """A reject sink that notes when each part's signal fired, after it left the source."""

    name = "clock"

    def __init__(self) -> None:
        self.latency_ms: list[float] = []

    def handle(self, part: InspectedPart) -> None:
        self.latency_ms.append((time.monotonic() - part.read_at) * 1000.0)

    def close(self) -> None:
        return None


def burst(frames: list[np.ndarray], parts: int, rate: float) -> Iterator[Sample]:
    """The parts as a camera delivers them: `rate` per second (0: as fast as they are taken)."""
    t0 = time.monotonic()
    for i in range(parts):
        if rate > 0:
            time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        yield Sample(part_id=f"p{i:05d}", frame=frames[i % len(frames)])


def run(
    frames: list[np.ndarray],
    args: argparse.Namespace,
    folder: Path,
    snapshots: bool,
) -> tuple[float, list[float]]:
    """parts/s through the pipeline and the reject signals' latencies (ms)."""
    clock = SignalClock()
    workers = {} if args.snapshot_workers is None else {"snapshot_workers": args.snapshot_workers}
    config = PipelineConfig(batch_size=8, **workers)
    with DefectStore.open(f"sqlite:///{folder / 'inspect.db'}") as store:
        pipeline = Pipeline(
            burst(frames, args.parts, args.rate),
            list,
            FailEverything(),
            BurstCard(),
            store,
            line="burst",
            model_version="v1",
            sinks=[clock],
            snapshots=SnapshotStore(folder / "snapshots") if snapshots else None,
            config=config,
        )
        t0 = time.perf_counter()
        outcome = pipeline.run()
        seconds = time.perf_counter() - t0
    if outcome.error:
        raise SystemExit(f"the pipeline stopped: {outcome.error}")
    return args.parts / seconds, clock.latency_ms


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", nargs="+", default=["640x480", "1600x1200", "2448x2048"], metavar="WxH"
    )
    parser.add_argument("--parts", type=int, default=64, help="rejected parts in the burst")
    parser.add_argument(
        "--rate",
        type=float,
        default=30.0,
        help="parts per second the camera delivers (default 30; 0: as fast as they are taken)",
    )
    parser.add_argument(
        "--snapshot-workers",
        type=int,
        default=None,
        help="threads writing snapshots (default: the pipeline's own choice)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    workers = args.snapshot_workers or getattr(PipelineConfig(), "snapshot_workers", 1)
    print(
        f"a burst of {args.parts} rejected parts delivered at {args.rate:g} parts/s (0: at "
        f"once), batches of 8, {workers} snapshot thread(s)"
    )
    print("| frame | parts/s, snapshots | parts/s, none | signal p50 / p95 ms, snapshots |")
    print("| --- | --- | --- | --- |")
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        # textured frames: JPEG of a flat image would be unrealistically cheap
        base = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
        frame = np.repeat(np.repeat(base, 8, axis=0), 8, axis=1)
        frames = [np.roll(frame, k * 3, axis=1) for k in range(4)]
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            rate, latency = run(frames, args, Path(a), snapshots=True)
            bare, _ = run(frames, args, Path(b), snapshots=False)
        p50, p95 = np.percentile(latency, [50, 95])
        print(f"| {w}x{h} | {rate:.1f} | {bare:.1f} | {p50:.0f} / {p95:.0f} |")


if __name__ == "__main__":
    main()
