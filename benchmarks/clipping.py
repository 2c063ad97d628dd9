"""How often `sensors.vibration.clipping` calls a window clipped: clean windows (none should be)
and the same windows flat-topped at a share of their peak (as an overloaded sensor, amplifier or
input range would give them).

Windows: CWRU's recordings in ../shared/data/cwru cut into 0.25 s windows (when the data is
beside the checkout), also rounded to 16-bit steps (peak at a quarter of full scale) and stored
as float16, as DAQs and `synth --vibration-format npy16` write them; and the demo line's
0.5 s float16 windows (sample_data/). Prints one table.

    python -m benchmarks.clipping
    python -m benchmarks.clipping --every 3        # every third CWRU window (faster)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from sensors.dataset import LineDataset
from sensors.vibration import clipping

ROOT = Path(__file__).resolve().parents[1]
CWRU = ROOT / ".." / "shared" / "data" / "cwru"
DEMO = ROOT / "sample_data" / "demo-line"
SHARES = (0.5, 0.8, 0.9, 0.95)


def windows(folder: Path, window_s: float | None, every: int) -> Iterator[np.ndarray]:
    """Every `every`-th vibration window of a dataset folder, as float64."""
    ds = LineDataset.open(folder, window_s=window_s) if window_s else LineDataset.open(folder)
    for i in range(0, len(ds), every):
        vibration = ds[i].vibration
        if vibration is not None:
            yield vibration.samples.astype(np.float64)


def clip_at(share: float) -> Callable[[np.ndarray], np.ndarray]:
    def clip(x: np.ndarray) -> np.ndarray:
        rail = share * float(np.abs(x).max())
        return np.clip(x, -rail, rail)

    return clip


def as_int16(x: np.ndarray) -> np.ndarray:
    """16-bit steps, the window's peak at a quarter of full scale."""
    return np.round(x / (4 * np.abs(x).max()) * 32767)


def as_float16(x: np.ndarray) -> np.ndarray:
    return (x / x.std()).astype(np.float16).astype(np.float64)


def rate(xs: list[np.ndarray], change: Callable[[np.ndarray], np.ndarray]) -> str:
    found = sum(clipping(change(x)) is not None for x in xs)
    return f"{found} / {len(xs)} ({100 * found / max(len(xs), 1):.1f} %)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--every", type=int, default=1, help="take every N-th CWRU window")
    args = ap.parse_args(argv)
    sets: dict[str, list[np.ndarray]] = {}
    if (CWRU / "labels.csv").is_file():
        sets["CWRU, 0.25 s windows"] = list(windows(CWRU, 0.25, args.every))
    else:
        print(f"skip CWRU: {CWRU} not found", file=sys.stderr)
    for part in ("adapt", "stream"):
        sets.setdefault("demo line, 0.5 s float16", []).extend(windows(DEMO / part, None, 1))
    changes: dict[str, Callable[[np.ndarray], np.ndarray]] = {"clean": lambda x: x}
    changes["clean, 16-bit steps"] = as_int16
    changes["clean, float16"] = as_float16
    for share in SHARES:
        changes[f"clipped at {share:.0%} of the peak"] = clip_at(share)
    print("| windows | " + " | ".join(sets) + " |")
    print("| --- |" + " --- |" * len(sets))
    for name, change in changes.items():
        print(f"| {name} | " + " | ".join(rate(xs, change) for xs in sets.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
