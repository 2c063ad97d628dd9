"""Parts from a camera written as a dataset folder to label (`inspect-app capture`).

Teaching a line (`adapt`) and setting its threshold on more parts (`calibrate`) need labeled
parts in the dataset contract (DESIGN §3). A line fed by a camera has no files to label; this
writes what the camera (and the vibration paired with it) gives, one part per frame, as
`images/<part>.png` (lossless, the whole frame: a line's region of interest is applied when the
parts are read, as on the line), `vibration/<part>.npy` (float32) and a row of `labels.csv` with
the `label` left for the engineer to fill in, or set for every part of a run (`--label ok` while
known good parts pass; `--label dent` for a batch of dented ones). Runs into the same folder
append to its `labels.csv`.

Each part's files are written before its row, and each row is flushed at once: stopping the
capture (Ctrl-C) leaves a complete dataset of the parts captured so far. A frame the camera
could not deliver is not written (it would be a part without an image) and is counted; so is
a part the line could not inspect either (`pipeline.input_problem`: a uniform frame from a
covered or dark camera, a flat vibration window) and one that repeats the part before it
sample for sample (`pipeline.RepeatWatch`: a frozen feed would write one part many times,
and `adapt` refuses a part taught twice).
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from inspect_app.pipeline import RepeatWatch, input_problem
from sensors.sample import Sample

COLUMNS = ("part_id", "timestamp", "image", "vibration", "sample_rate_hz", "rpm", "label")
LABEL_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class CaptureResult:
    """What one capture run wrote."""

    folder: Path
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (part id, why)
    appended: bool = False  # the folder held a capture already: rows were added to it


def check_label(label: str | None) -> str | None:
    """`--label`: a class slug (or `ok`), or None to leave the labels to fill in."""
    if label is None or LABEL_SLUG.match(label):
        return label
    msg = f"label {label!r} is not a class slug (letters, digits, _ . -; `ok` for good parts)"
    raise ValueError(msg)


def open_table(folder: Path) -> tuple[bool, list[str]]:
    """Whether `folder/labels.csv` exists (to append to) and the part ids it holds; a table
    with other columns (another dataset, not a capture) is refused rather than mixed into."""
    table = folder / "labels.csv"
    if not table.is_file():
        return False, []
    with table.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            msg = (
                f"{table} has columns {reader.fieldnames}, not a capture's {list(COLUMNS)}: "
                "capture into a new folder"
            )
            raise ValueError(msg)
        return True, [row["part_id"] for row in reader]


def capture_parts(
    samples: Iterable[Sample],
    folder: Path,
    parts: int,
    label: str | None = None,
    every_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    on_part: Callable[[int], None] | None = None,
) -> CaptureResult:
    """Write up to `parts` parts of `samples` into `folder`, at most one per `every_s`
    seconds (a camera delivering a stream rather than one frame per part)."""
    label = check_label(label)
    if parts < 1:
        msg = f"parts to capture must be positive, got {parts}"
        raise ValueError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    appended, existing = open_table(folder)
    taken = set(existing)
    result = CaptureResult(folder, appended=appended)
    (folder / "images").mkdir(exist_ok=True)
    last = -float("inf")
    repeats = RepeatWatch()
    with (folder / "labels.csv").open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if not appended:
            writer.writeheader()
            f.flush()
        for sample in samples:
            now = clock()
            if now - last < every_s:
                continue
            repeated = repeats.check(sample)  # every part considered, so the next compares
            why = _unwritable(sample) or input_problem(sample) or repeated
            if why is not None:
                result.skipped.append((sample.part_id, why))
                continue
            stem = _stem(sample.part_id, taken)
            writer.writerow(_write_part(folder, stem, sample, label))
            f.flush()
            taken.add(stem)
            last = now
            result.written += 1
            if on_part is not None:
                on_part(result.written)
            if result.written >= parts:
                break
    return result


def _unwritable(sample: Sample) -> str | None:
    if sample.fault is not None:
        return sample.fault
    if sample.frame is None and sample.vibration is None:
        return "no frame and no vibration"
    return None


def _stem(part_id: str, taken: set[str]) -> str:
    """A file-safe, unused name for the part (its id where that is one)."""
    stem = _UNSAFE.sub("_", part_id).strip("._") or "part"
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


def _write_part(folder: Path, stem: str, sample: Sample, label: str | None) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS, "")
    row["part_id"] = stem
    stamp = sample.timestamp or datetime.now(timezone.utc).timestamp()
    row["timestamp"] = datetime.fromtimestamp(stamp, timezone.utc).isoformat()
    if sample.frame is not None:
        image = f"images/{stem}.png"
        frame = sample.frame
        bgr = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(folder / image), bgr):
            msg = f"could not write {folder / image}"
            raise OSError(msg)
        row["image"] = image
    vib = sample.vibration
    if vib is not None:
        (folder / "vibration").mkdir(exist_ok=True)
        name = f"vibration/{stem}.npy"
        np.save(folder / name, np.asarray(vib.samples, dtype=np.float32))
        row["vibration"] = name
        row["sample_rate_hz"] = f"{vib.sample_rate_hz:g}"
        row["rpm"] = "" if vib.rpm is None else f"{vib.rpm:g}"
    row["label"] = label or ""
    return row
