"""Drift on the demo line: how soon `serve` says the parts score otherwise than they did, and how
rarely it says so when nothing changed (`inspect_app.drift`).

The demo line (taught in HOME as `inspect-app demo` does) inspects a long stream of its own
product (synthetic line 15, parts numbered from 5000, 15 % defective, made with `inspect-app
synth` into a temporary folder), scored once as the camera and sensor saw it and once under
each change: the light 15 % and 30 % dimmer, the lens out of focus (Gaussian blur, sigma 1.5
px on the 224 px frame), the vibration sensor's mounting loosened (its high frequencies
damped: a 2 kHz low-pass). For
each it prints the share of parts the line rejects, and, with the stream's first
`reference` parts as taught followed by the changed parts, after how many changed parts the
drift monitor says so. False alarms: the as-taught scores in `shuffles` random orders, every
part after the reference judged as `serve` judges it.

    python -m benchmarks.drift                    # HOME: $INSPECT_APP_HOME or the default
    python -m benchmarks.drift --parts 3000 --shuffles 500
    python -m benchmarks.drift --home H --line L --stream DIR   # another line taught in H, DIR
                                                                # a labeled stream of its product
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
from scipy.signal import butter, sosfiltfilt

from inspect_app.commands.demo import LINE, ensure_line_model, sample_line
from inspect_app.decision import decide_batch
from inspect_app.drift import DriftMonitor, DriftSettings, DriftState
from inspect_app.home import resolve_home
from inspect_app.preprocess import prepare_batch
from inspect_app.service import load_line
from sensors.dataset import LineDataset
from sensors.sample import Sample, VibrationWindow

BATCH = 16


def dim(factor: float) -> Callable[[Sample], Sample]:
    def change(s: Sample) -> Sample:
        if s.frame is not None:
            s.frame = np.clip(s.frame.astype(np.float32) * factor, 0, 255).astype(np.uint8)
        return s

    return change


def blur(sigma: float) -> Callable[[Sample], Sample]:
    def change(s: Sample) -> Sample:
        if s.frame is not None:
            s.frame = cv2.GaussianBlur(s.frame, (0, 0), sigma)
        return s

    return change


def damped(cutoff_hz: float) -> Callable[[Sample], Sample]:
    """A sensor mounting gone loose: the high frequencies no longer reach it."""

    def change(s: Sample) -> Sample:
        v = s.vibration
        if v is not None:
            sos = butter(4, cutoff_hz, "low", fs=v.sample_rate_hz, output="sos")
            damped = sosfiltfilt(sos, v.samples).astype(np.float32)
            s.vibration = VibrationWindow(damped, v.sample_rate_hz, v.rpm)
        return s

    return change


def score(
    home: Path, line: str, stream: Path, change: Callable[[Sample], Sample] | None
) -> tuple[np.ndarray, list[str]]:
    """Each part's defect score and verdict (the line's torch model, as `serve` decides)."""
    loaded = load_line(home, line, "torch")
    dataset = LineDataset.open(stream)
    scores: list[float] = []
    verdicts: list[str] = []
    for start in range(0, len(dataset), BATCH):
        samples = [dataset.load(i) for i in range(start, min(start + BATCH, len(dataset)))]
        if change is not None:
            samples = [change(s) for s in samples]
        result = loaded.backend.predict(prepare_batch(samples, loaded.card))
        scores.extend(float(v) for v in result.defect_score)
        verdicts.extend(v.verdict for v in decide_batch(result, loaded.card))
    loaded.backend.close()
    return np.asarray(scores), verdicts


def alarms(
    scores: np.ndarray, verdicts: list[str], settings: DriftSettings, start: int, line: str = LINE
) -> list[int]:
    """The parts (counted from `start`) at which the monitor said the line drifted."""
    said: list[int] = []
    at = [0]

    def on_change(state: DriftState) -> None:
        if state.drifted:
            said.append(at[0])

    monitor = DriftMonitor(line, lambda version, n: (), settings, on_change=on_change)
    for value, name in zip(scores, verdicts, strict=True):
        verdict = SimpleNamespace(verdict=name, defect_score=float(value))
        monitor.handle(SimpleNamespace(verdict=verdict, model_version="v1"))  # type: ignore[arg-type]
        at[0] += 1
    return [k - start for k in said]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default=None, help="HOME with the demo line (taught if missing)")
    parser.add_argument("--parts", type=int, default=1500, help="parts in the stream")
    parser.add_argument("--shuffles", type=int, default=200, help="orders for false alarms")
    parser.add_argument("--stream", type=Path, default=None, help="an already made stream")
    parser.add_argument(
        "--line",
        default=LINE,
        help=f"a line taught in HOME (default {LINE}, taught if missing); another needs --stream",
    )
    args = parser.parse_args()
    if args.line != LINE and args.stream is None:
        parser.error(f"--line {args.line} needs --stream: a labeled stream of its product")
    settings = DriftSettings()
    home = resolve_home(args.home)
    if args.line == LINE:
        ensure_line_model(home, sample_line(home) / "adapt", readapt=False)
    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        stream = args.stream or Path(tmp) / "stream"
        if args.stream is None:
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "inspect_app", "synth", "--out", str(stream),
                 "--line-seed", "15", "--parts", str(args.parts), "--start-index", "5000",
                 "--defect-fraction", "0.15", "--split", "test", "--image-size", "224",
                 "--image-format", "jpg", "--vibration-format", "npy16", "--duration", "0.5"],
                check=True, capture_output=True,
            )  # fmt: skip
            print(f"stream: {args.parts} parts of line 15 made in {time.perf_counter() - t0:.0f} s")
        changes: dict[str, Callable[[Sample], Sample] | None] = {
            "as taught": None,
            "light 15 % dimmer": dim(0.85),
            "light 30 % dimmer": dim(0.70),
            "out of focus (blur 1.5 px)": blur(1.5),
            "sensor mounting loosened (low-pass 2 kHz)": damped(2000.0),
        }
        scored = {name: score(home, args.line, stream, change) for name, change in changes.items()}
    ref = settings.reference_parts
    base, base_verdicts = scored["as taught"]
    print(
        f"reference: the first {ref} parts as taught; window {settings.window}, checked every "
        f"{settings.check_every} parts, said below a chance of {settings.alpha:g}"
    )
    print("| stream after the reference | parts rejected | drift said after (parts) |")
    print("| --- | --- | --- |")
    for name, (values, verdicts) in scored.items():
        rejected = np.mean([v != "PASS" for v in verdicts[ref:]])
        said = alarms(
            np.concatenate([base[:ref], values[ref:]]),
            base_verdicts[:ref] + verdicts[ref:],
            settings,
            ref,
            args.line,
        )
        when = str(said[0]) if said else f"not in {len(values) - ref}"
        print(f"| {name} | {100 * rejected:.1f} % | {when} |")
    rng = np.random.default_rng(0)
    false = 0
    judged = 0
    for _ in range(args.shuffles):
        order = rng.permutation(len(base))
        verdicts = [base_verdicts[i] for i in order]
        false += len(alarms(base[order], verdicts, settings, ref, args.line))
        judged += len(order) - ref
    print(
        f"false alarms as taught, {args.shuffles} random orders: {false} in {judged} parts "
        f"judged ({judged / 30 / 3600:.1f} hours at 30 parts/s)"
    )


if __name__ == "__main__":
    main()
