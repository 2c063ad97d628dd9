"""Is the operator console responsive while the line runs at full speed?

Runs the real window offscreen (real pipeline, store, workers, widgets) on the sample stream,
replayed as fast as the pipeline takes it, and prints:

* the worst event-loop stall: a 10 ms QTimer heartbeat runs on the GUI thread; a stall is how
  much later than due a beat fires (target: under 50 ms);
* parts/s processed (committed to the defect log) vs. parts/s shown (parts the window drew;
  it draws the newest part every 50 ms, so it shows fewer than it processes at high rates).

By default the model is FAKE (`label-oracle`: scores each part by its label, no network), so the
pipeline runs far faster than a real model would and the window gets the most traffic it can:
this measures the console, not the model. `--home H --line L` runs a real line model instead.

    .venv/bin/python -P benchmarks/console.py
    .venv/bin/python -P benchmarks/console.py --repeat 10 --batch 16
    .venv/bin/python -P benchmarks/console.py --home HOME --line demo-line   # a real model

(`-P`: benchmarks/sensors.py would otherwise shadow the `sensors` package.)
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
STREAM = REPO / "sample_data" / "demo-line" / "stream"
HEARTBEAT_MS = 10
CLASSES = ("bearing_inner", "bearing_outer", "crack", "edge_chip", "missing_feature")


@dataclass
class OracleCard:
    """What the console reads of a line card (`inspect_app.lines.LineCard`)."""

    classes: tuple[str, ...] = CLASSES
    threshold: float = 0.5
    modalities: tuple[str, ...] = ("image", "vibration")
    image_bits: int | None = None  # frames read as they are
    roi: list[int] | None = None


class LabelOracleBackend:
    """FAKE model: 0.9 for a part labeled defective, 0.1 for `ok`; a heat-map blob."""

    name = "label-oracle"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s  # stands in for a real model's time per batch

    def predict(self, inputs: list[Any]) -> Any:
        from inspect_app.backends.base import BackendResult

        if self.delay_s:
            time.sleep(self.delay_s)
        n = len(inputs)
        score = np.array([0.1 if s.label in (None, "ok") else 0.9 for s in inputs], np.float32)
        probs = np.full((n, len(CLASSES)), 0.01, np.float32)
        for i, s in enumerate(inputs):
            if s.label in CLASSES:
                probs[i, CLASSES.index(s.label)] = 0.95
        heat = np.zeros((n, 14, 14), np.float32)
        heat[:, 3:7, 8:12] = 1.0
        return BackendResult(score, probs, heat, np.zeros(n, np.float32))

    def close(self) -> None:
        return None


def repeated_stream(out: Path, repeat: int) -> Path:
    """The sample stream `repeat` times over (new part ids, same files via links)."""
    with (STREAM / "labels.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    for name in ("images", "vibration", "masks"):
        if (STREAM / name).is_dir():
            (out / name).symlink_to(STREAM / name, target_is_directory=True)
    with (out / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for k in range(repeat):
            for row in rows:
                writer.writerow({**row, "part_id": f"{row['part_id']}-r{k}"})
    return out


class Heartbeat:
    """A QTimer on the GUI thread; records how late each beat fires."""

    def __init__(self, interval_ms: int) -> None:
        from PyQt6.QtCore import QTimer

        self.interval = interval_ms / 1000.0
        self.stalls: list[float] = []
        self.at: list[float] = []  # when each beat fired
        self.start = self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.beat)
        self.timer.start()

    def beat(self) -> None:
        now = time.perf_counter()
        self.stalls.append(max(0.0, now - self.last - self.interval))
        self.at.append(now - self.start)
        self.last = now

    def worst(self, n: int = 3) -> str:
        """The `n` worst stalls and when they began, e.g. "212 ms at 0.31 s"."""
        order = np.argsort(self.stalls)[::-1][:n]
        return ", ".join(
            f"{self.stalls[i] * 1000:.0f} ms at {self.at[i] - self.stalls[i]:.2f} s" for i in order
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=4, help="replay the stream N times over")
    parser.add_argument("--batch", type=int, default=8, help="parts per model call")
    parser.add_argument("--home", type=Path, help="HOME with a real line model (with --line)")
    parser.add_argument("--line", help="run this real line model instead of the fake one")
    parser.add_argument(
        "--screenshot",
        type=Path,
        help="save the window (PNG) while a FAIL is on screen, after --shot-after parts",
    )
    parser.add_argument("--shot-after", type=int, default=150, metavar="N")
    parser.add_argument(
        "--model-ms", type=float, default=0.0, help="fake model time per batch (default: none)"
    )
    parser.add_argument("--db", help="defect log URL to keep (default: a temporary SQLite)")
    parser.add_argument("--idle-s", type=float, default=3.0, help="idle baseline length")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args()
    if not (STREAM / "labels.csv").is_file():
        print(f"no sample stream at {STREAM}", file=sys.stderr)
        return 1

    from PyQt6.QtWidgets import QApplication

    from inspect_app.service import LoadedLine
    from inspect_app.store import DefectStore
    from ui.main_window import MainWindow
    from ui.worker import ConsoleSettings, LineRuntime, product_loader

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "stream").mkdir()
        stream = repeated_stream(tmp / "stream", args.repeat)
        db_url = args.db or f"sqlite:///{tmp / 'inspect.db'}"
        store = DefectStore.open(db_url)
        if args.line:
            loader = product_loader(args.home or tmp, "torch")
            line, model = args.line, f"line model {args.line}"
        else:

            def loader(name: str) -> LineRuntime:
                loaded = LoadedLine(
                    LabelOracleBackend(args.model_ms / 1000), OracleCard(), tmp, "v1", None
                )
                return LineRuntime(loaded, list)

            line, model = "bench-line", "FAKE label-oracle model"
        settings = ConsoleSettings(home=tmp, db_url=db_url, batch_size=args.batch)
        window = MainWindow(store, loader, settings, line, [line], source=str(stream))
        window.resize(1600, 1000)
        window.show()
        deadline = time.monotonic() + args.timeout_s
        while not window.classes and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.005)
        # The floor: the same heartbeat with the window idle, on this machine at this load.
        idle = Heartbeat(HEARTBEAT_MS)
        idle_end = time.monotonic() + args.idle_s
        while time.monotonic() < idle_end:
            app.processEvents()
            time.sleep(0.001)
        idle.timer.stop()
        beat = Heartbeat(HEARTBEAT_MS)
        t0 = time.perf_counter()
        window.start()
        expected = 300 * args.repeat
        shot = False
        while time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.001)
            if window.health_view.state in ("ended", "error") and window.counters_view.parts:
                break
            current = window.current
            if (
                args.screenshot is not None
                and not shot
                and current is not None
                and current.verdict == "FAIL"
                and window.counters_view.parts >= args.shot_after
            ):
                window.grab().save(str(args.screenshot))
                shot = True
        seconds = time.perf_counter() - t0
        beat.timer.stop()
        shown = window.display
        window.shutdown()
        committed = store.count(line=line)
        store.close()

    stalls = np.array(beat.stalls) * 1000.0
    floor = np.array(idle.stalls) * 1000.0
    print(f"model: {model}; parts: {committed} of {expected} committed in {seconds:.1f} s")
    print(f"parts/s processed: {committed / seconds:.1f} (committed to the log)")
    print(f"parts/s shown:     {shown.per_s:.1f} ({shown.shown} parts drawn)")
    print(
        f"event-loop stall (heartbeat {HEARTBEAT_MS} ms, {stalls.size} beats): "
        f"worst {stalls.max():.1f} ms, p99 {np.percentile(stalls, 99):.1f} ms, "
        f"p50 {np.percentile(stalls, 50):.1f} ms  (target worst < 50 ms)"
    )
    print(f"worst stalls: {beat.worst()} after start")
    print(
        f"idle window, same heartbeat ({floor.size} beats): worst {floor.max():.1f} ms, "
        f"p99 {np.percentile(floor, 99):.1f} ms  (the machine's own floor; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
