"""Time the defect reports on a large log (default 100,000 inspections; target 10 s per format).

Builds a week of two lines in a fresh SQLite log with bulk inserts (six NEU-DET defect classes,
about 4 % fails, some faults, two model versions per line, operator overrides, heat-map
snapshots for the worst parts), then times each format and prints one line per format. Then
the log read back as `adapt --from-db` (the parts an operator acted on) and `calibrate
--from-db` (the parts one version decided) read it, filtered in the database, against the
same answer filtered row by row in Python (as both did before).

    .venv/bin/python benchmarks/report.py                 # 100,000 inspections
    .venv/bin/python benchmarks/report.py --parts 20000 --keep out/   # keep the log and reports
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from inspect_app.calibrate import logged_parts
from inspect_app.from_db import corrected_rows
from inspect_app.report import ReportQuery, plant_zone, write_report
from inspect_app.store import DefectStore, InspectionRecord

CLASSES = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
CLASS_WEIGHTS = (0.08, 0.3, 0.12, 0.06, 0.14, 0.3)
LINES = ("press-1", "press-2")
START = datetime(2026, 3, 2, 5, 0, tzinfo=timezone.utc)
BATCH = 5000


def make_records(n: int, seed: int) -> list[InspectionRecord]:
    """`n` inspections over a week: fail rate drifting with the hour, two versions per line."""
    rng = random.Random(seed)
    step = timedelta(days=7) / n
    records = []
    for i in range(n):
        line = LINES[i % 2]
        when = START + step * i
        version = "v1" if when < START + timedelta(days=4) else "v2"
        hour = when.hour
        fail_p = 0.03 + (0.03 if hour in (5, 13, 21) else 0.0)  # shift starts fail more
        u = rng.random()
        common = {
            "line": line,
            "model_version": version,
            "part_id": f"{line}-{i:07d}",
            "timestamp": when,
            "latency_ms": rng.uniform(8, 20),
            "anomaly_score": rng.uniform(0, 5),
        }
        if u < 0.003:
            records.append(
                InspectionRecord(**common, verdict="FAULT", fault_reason="camera timeout")
            )
        elif u < 0.003 + fail_p:
            cls = rng.choices(CLASSES, CLASS_WEIGHTS)[0]
            x0, y0 = rng.uniform(0, 0.7), rng.uniform(0, 0.7)
            records.append(
                InspectionRecord(
                    **common,
                    verdict="FAIL",
                    defect_class=cls,
                    defect_score=rng.uniform(0.5, 1.0),
                    class_probs={c: (0.9 if c == cls else 0.02) for c in CLASSES},
                    box=(x0, y0, x0 + 0.2, y0 + 0.2),
                    snapshot_path=f"snapshots/{line}/{line}-{i:07d}.png",
                )
            )
        else:
            records.append(
                InspectionRecord(**common, verdict="PASS", defect_score=rng.uniform(0, 0.4))
            )
    return records


def write_snapshot(path: Path, box: tuple[float, float, float, float], seed: int) -> None:
    """A steel-like gray texture with a jet heat-map blended over the defect box."""
    rng = np.random.default_rng(seed)
    size = 200
    texture = cv2.GaussianBlur(rng.normal(128, 40, (size, size)).astype(np.float32), (0, 0), 2)
    gray = np.clip(texture, 0, 255).astype(np.uint8)
    cx, cy = (box[0] + box[2]) / 2 * size, (box[1] + box[3]) / 2 * size
    yy, xx = np.mgrid[0:size, 0:size]
    heat = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size * 0.08) ** 2))
    colored = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    alpha = (0.6 * heat)[..., None]
    blended = (base * (1 - alpha) + colored * alpha).astype(np.uint8)
    x0, y0, x1, y1 = (int(v * size) for v in box)
    cv2.rectangle(blended, (x0, y0), (x1, y1), (255, 255, 255), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), blended)


def build_log(folder: Path, n: int, seed: int) -> tuple[str, float]:
    """Fill a fresh SQLite log in `folder`; returns its URL and the seconds it took."""
    url = f"sqlite:///{folder / 'inspect.db'}"
    records = make_records(n, seed)
    start = time.perf_counter()
    with DefectStore.open(url) as store:
        for line in LINES:
            store.register_model_version(line, "v1", "1" * 64)
            store.register_model_version(line, "v2", "2" * 64)
        for i in tqdm(range(0, n, BATCH), desc="building log", unit="batch"):
            store.add_inspections(records[i : i + BATCH])
        rng = random.Random(seed + 1)
        fails = store.inspections(verdict="FAIL", limit=n)
        for row in rng.sample(fails, min(300, len(fails))):
            if rng.random() < 0.6:
                store.add_operator_action(row.id, "false_alarm", "M. Weber", "oil film, wiped off")
            else:
                new = rng.choice([c for c in CLASSES if c != row.defect_class])
                store.add_operator_action(row.id, "relabel", "A. Novak", "", new_class=new)
    seconds = time.perf_counter() - start
    worst = sorted(
        (r for r in records if r.verdict == "FAIL"), key=lambda r: -(r.defect_score or 0)
    )
    for k, r in enumerate(worst[:12]):
        if r.snapshot_path and r.box:
            write_snapshot(folder / r.snapshot_path, r.box, seed + k)
    return url, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tz", default="Europe/Berlin")
    parser.add_argument("--keep", type=Path, help="write the log and reports here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        url, build_s = build_log(folder, args.parts, args.seed)
        print(
            f"log: {args.parts} inspections written in {build_s:.1f} s "
            f"({args.parts / build_s:.0f} inspections/s, batches of {BATCH})"
        )
        tz, tz_name = plant_zone(args.tz)
        query = ReportQuery(tz=tz, tz_name=tz_name)
        for fmt in ("csv", "html", "pdf"):
            out = folder / f"report.{fmt}"
            start, cpu = time.perf_counter(), time.process_time()
            with DefectStore.open(url) as store:
                outcome = write_report(store, fmt, out, query, (folder,))
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            size = sum(f.stat().st_size for f in outcome.files) / 1e6
            note = "" if seconds <= 10 else "  (over the 10 s target)"
            print(
                f"{fmt:>4}: {seconds:5.2f} s ({cpu:.2f} s CPU) for {outcome.inspections} "
                f"inspections ({size:.1f} MB){note}"
            )
        with DefectStore.open(url) as store:
            time_read_back(store, LINES[0])


def time_read_back(store: DefectStore, line: str) -> None:
    """The log's read-back queries, in the database and row by row, with their answers."""
    until = START + timedelta(days=8)

    def timed(what: str, read: Callable[[], int]) -> None:
        start = time.perf_counter()
        n = read()
        print(f"{what}: {n} rows in {time.perf_counter() - start:.2f} s")

    timed(
        f"{line}'s parts an operator acted on, in the database",
        lambda: len(corrected_rows(store, line)),
    )
    timed(
        f"{line}'s parts an operator acted on, row by row",
        lambda: sum(r.operator_action is not None for r in store.iter_inspections(line=line)),
    )
    timed(
        f"{line}'s parts v2 decided, in the database",
        lambda: sum(1 for _ in store.iter_inspections(line, until=until, versions=["v2"])),
    )
    timed(
        f"{line}'s parts v2 decided, row by row",
        lambda: sum(r.model_version == "v2" for r in store.iter_inspections(line, until=until)),
    )
    timed(
        f"calibrate --from-db's read of {line}'s v2 parts (labeled, faults left out)",
        lambda: len(logged_parts(store, line, ["v2"], until)[0]),
    )


if __name__ == "__main__":
    main()
