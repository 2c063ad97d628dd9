"""Per-part cost of the stages that grow with the camera's resolution, at camera frame sizes.

The model sees every frame at the line's size (128 px on the demo line); what a bigger camera
costs is reading the frame (JPEG decode), preparing the model input (the reduction to the
line's size, then registration) and, for a FAIL part, the snapshot (heat-map over the whole
frame, JPEG). The demo line's first 8 stream parts are upscaled to each size and written as
JPEG (quality 95) into a temporary folder; each stage is timed on them, median of repeats.

    python -m benchmarks.frame_size                  # HOME: $INSPECT_APP_HOME or the default
    python -m benchmarks.frame_size --threads 1 --sizes 640x480 2448x2048

The demo line is taught in HOME when missing (as `inspect-app demo` does).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from inspect_app.commands.demo import LINE, ensure_line_model, sample_line
from inspect_app.decision import Verdict
from inspect_app.home import resolve_home
from inspect_app.lines import load_line_model
from inspect_app.pipeline import InspectedPart
from inspect_app.preprocess import prepare_batch
from inspect_app.snapshots import SnapshotStore
from sensors.dataset import LineDataset
from sensors.sample import Sample

PARTS = 8
DEFAULT_SIZES = ("640x480", "1600x1200", "2448x2048")


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def camera_stream(stream: Path, out: Path, width: int, height: int) -> Path:
    """The first PARTS parts of `stream` with frames upscaled to width x height (JPEG 95),
    vibration kept, masks left out (they are the stream's size)."""
    with (stream / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:PARTS]
    (out / "images").mkdir(parents=True)
    for row in rows:
        frame = cv2.imread(str(stream / row["image"]))
        assert frame is not None, row["image"]  # the demo stream is ours
        big = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(out / row["image"]), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if row.get("vibration"):
            target = out / row["vibration"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(stream / row["vibration"], target)
        row["mask"] = ""
    with (out / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default=None, help="HOME with the demo line (taught if missing)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5, help="timings per stage (median)")
    parser.add_argument(
        "--sizes", nargs="+", default=list(DEFAULT_SIZES), help="camera frame sizes, WxH"
    )
    args = parser.parse_args()
    sizes = []
    for text in args.sizes:
        try:
            w, h = (int(v) for v in text.lower().split("x"))
        except ValueError:
            parser.error(f"--sizes: {text!r} is not WxH (e.g. 2448x2048)")
        sizes.append((w, h))

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    home = resolve_home(args.home)
    data = sample_line(home)
    ensure_line_model(home, data / "adapt", readapt=False)
    _, card, _ = load_line_model(home, LINE)
    print(
        f"line {LINE} ({', '.join(card.modalities)}; image {card.image_size} px, "
        f"alignment {'on' if card.align else 'off'}), {args.threads} threads, "
        f"median of {args.repeat}"
    )
    print(f"{'frame':>11} {'MP':>5} {'read ms':>8} {'prepare ms':>11} {'FAIL snapshot ms':>17}")
    heat = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    verdict = Verdict(
        verdict="FAIL", defect_class="crack", defect_score=0.9, box=(0.1, 0.1, 0.3, 0.3)
    )
    for width, height in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = camera_stream(data / "stream", Path(tmp) / "stream", width, height)
            ds = LineDataset.open(folder)
            samples = [ds.load(i, strict=False) for i in range(len(ds))]
            store = SnapshotStore(Path(tmp) / "snapshots")
            part = InspectedPart(sample=samples[0], verdict=verdict, heatmap=heat)

            def read_one(ds: LineDataset = ds) -> object:
                return ds.load(0, strict=False)

            def prepare_all(samples: list[Sample] = samples) -> object:
                return prepare_batch(samples, card)

            def snapshot_one(store: SnapshotStore = store, part: InspectedPart = part) -> object:
                return store.save(part)

            read = median_ms(read_one, args.repeat)
            prepare = median_ms(prepare_all, args.repeat) / len(samples)
            snapshot = median_ms(snapshot_one, args.repeat)
        mp = width * height / 1e6
        print(f"{width:>5}x{height:<5} {mp:5.1f} {read:8.1f} {prepare:11.1f} {snapshot:17.1f}")


if __name__ == "__main__":
    main()
