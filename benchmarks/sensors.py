"""Sensing-layer speed: spectrum features, image decode + resize, dataset read rate.

Reads the real data in ../shared/data when it is beside the checkout (NEU-DET JPEGs, CWRU .mat),
else generates stand-ins, and says which it used.

    python -m benchmarks.sensors                 # all three, batch of 64 windows
    python -m benchmarks.sensors --batch 256 --threads 1
    python benchmarks/sensors.py                 # the same: reruns itself as a module
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:
    # Run as a file, this file's name would hide the `sensors` package: rerun as a module.
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "benchmarks.sensors", *sys.argv[1:]])

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from sensors.camera import read_image
from sensors.dataset import LineDataset
from sensors.spectrum import spectrum_features

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RATE = 25600


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall seconds and mean CPU seconds of `repeats` calls, after one warm-up call.

    CPU time is printed too because on a shared machine the wall clock also counts the time
    other processes hold the cores.
    """
    fn()
    times = []
    cpu0 = time.process_time()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), (time.process_time() - cpu0) / repeats


def bench_spectrum(batch: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, RATE)).astype(np.float32)
    wall, cpu = timed(lambda: spectrum_features(x, RATE), repeats=7)
    print(
        f"spectrum features, 1 s at 25.6 kHz, batch of {batch}: {1e3 * wall / batch:.2f} ms "
        f"per window wall, {1e3 * cpu / batch:.2f} ms CPU (target <= 2 ms)"
    )
    wall, cpu = timed(lambda: spectrum_features(x[0], RATE), repeats=50)
    print(
        f"spectrum features, 1 s at 25.6 kHz, single window: {1e3 * wall:.2f} ms wall, "
        f"{1e3 * cpu:.2f} ms CPU"
    )


def image_files(workdir: Path) -> tuple[list[Path], str]:
    neu = (SHARED / "neu-det").resolve()
    files = sorted(neu.glob("*/*.jpg"))[:300]
    if files:
        return files, f"NEU-DET JPEGs 200x200 ({len(files)} files)"
    rng = np.random.default_rng(0)
    out = []
    for i in range(100):
        path = workdir / f"part_{i:03d}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
        out.append(path)
    return out, "generated 640x480 PNGs (no ../shared/data)"


def bench_images(size: int, workdir: Path) -> None:
    files, what = image_files(workdir)

    def decode_all() -> None:
        for path in files:
            cv2.resize(read_image(path), (size, size), interpolation=cv2.INTER_AREA)

    wall, cpu = timed(decode_all, repeats=3)
    print(
        f"image decode + resize to {size}: {1e3 * wall / len(files):.2f} ms per part wall, "
        f"{1e3 * cpu / len(files):.2f} ms CPU [{what}]"
    )


def bench_dataset(workdir: Path) -> None:
    sets = []
    if (SHARED / "neu-det" / "labels.csv").is_file():
        sets.append(("NEU-DET (image + boxes mask)", (SHARED / "neu-det").resolve(), None))
    if (SHARED / "cwru" / "labels.csv").is_file():
        sets.append(("CWRU (.mat, 1 s windows)", (SHARED / "cwru").resolve(), 1.0))
    if not sets:
        folder = workdir / "generated"
        (folder / "img").mkdir(parents=True)
        rng = np.random.default_rng(0)
        lines = ["image,vibration,label,sample_rate_hz"]
        for i in range(100):
            cv2.imwrite(
                str(folder / "img" / f"{i}.png"),
                rng.integers(0, 255, (256, 256, 3), dtype=np.uint8),
            )
            np.save(folder / "img" / f"{i}.npy", rng.standard_normal(RATE).astype(np.float32))
            lines.append(f"img/{i}.png,img/{i}.npy,ok,{RATE}")
        (folder / "labels.csv").write_text("\n".join(lines) + "\n")
        sets.append(("generated (256x256 PNG + 1 s .npy)", folder, None))
    for name, folder, window_s in sets:
        t0 = time.perf_counter()
        ds = LineDataset.open(folder, window_s=window_s)
        opened = time.perf_counter() - t0
        n = min(len(ds), 600)
        t0 = time.perf_counter()
        faults = sum(ds.load(i, strict=False).fault is not None for i in range(n))
        seconds = time.perf_counter() - t0
        print(
            f"dataset read {name}: {n / seconds:.0f} parts/s over {n} parts "
            f"(open {opened:.2f} s, {faults} faults)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--batch", type=int, default=64, help="windows per spectrum batch (default 64)"
    )
    parser.add_argument(
        "--image-size", type=int, default=224, help="resize target in pixels (default 224)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="OpenCV threads; 0 keeps its default"
    )
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpu cores visible: {os.cpu_count()}, load average {load:.1f}")
    bench_spectrum(args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        bench_images(args.image_size, Path(tmp))
        bench_dataset(Path(tmp))


if __name__ == "__main__":
    main()
