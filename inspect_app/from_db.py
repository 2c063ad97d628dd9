"""Parts the operators corrected in the defect log → an adaptation dataset (DESIGN §3).

`inspect-app adapt --line L --from-db` teaches the line from what the operators said at the line:
every part with an operator action (`confirm`, `false_alarm`, `relabel`) becomes a labeled row
with its effective label (`ok` after a false alarm, the operator's class after a relabel, the
machine's class when confirmed).

Where the part's data comes from, best first:

1. The source it was inspected from. The log records the part id but not the source path, so the
   caller names the dataset folders the line replayed (`sources`); a part found there by id is
   read through `LineDataset` and written out clean (PNG image, `.npy` vibration). A hot folder
   (`serve --watch`) works too: its files are named by part id (its vibration as WAV, which
   carries its rate).
2. Its snapshot beside the log (FAIL / FAULT parts only). The `.npz` holds the raw vibration
   window and is used; the snapshot image has the heat-map and box drawn in, so it is NOT used
   as a training image (the model would learn our own overlay).

A corrected part found in neither is listed in `skipped` with the reason; nothing is dropped
silently. A FAULT part that was only confirmed has no label and is skipped likewise.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from inspect_app.snapshots import find_snapshot, snapshot_dir_for
from inspect_app.sources import hot_folder_file
from inspect_app.store import DefectStore, InspectionRow
from sensors.camera import FrameFormat
from sensors.dataset import LineDataset
from sensors.errors import DataError
from sensors.sample import OK_LABEL, Sample
from sensors.vibration import read_vibration

COLUMNS: tuple[str, ...] = (
    "image",
    "vibration",
    "label",
    "sample_rate_hz",
    "rpm",
    "part_id",
    "timestamp",
    "split",
)


@dataclass(frozen=True)
class CorrectedPart:
    """One row written: the part, its label after the override, and where its data came from."""

    inspection_id: int
    part_id: str
    label: str
    action: str
    image: str | None  # relative to the dataset folder
    vibration: str | None
    origin: str  # "source <folder>" or "snapshot <file>"


@dataclass
class FromDbResult:
    """The dataset folder written, its rows, and the corrected parts that could not be used."""

    folder: Path
    parts: list[CorrectedPart] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (part_id, why)
    # the bits the source frames were read with (the line's `image_bits`); the frames written
    # are 8-bit, so the line taught from them must keep these for its camera's files
    image_bits: int | None = None
    # the line's region of interest ([x, y, w, h]); the frames are written whole, so the line
    # taught from them must crop them, and its camera's, to it
    roi: list[int] | None = None

    @property
    def label_counts(self) -> dict[str, int]:
        return dict(Counter(p.label for p in self.parts))


def corrected_rows(store: DefectStore, line: str) -> list[InspectionRow]:
    """Every inspection of `line` an operator acted on, newest first."""
    found = list(store.iter_inspections(line=line, acted_on=True))
    return sorted(found, key=lambda r: (r.timestamp, r.id), reverse=True)


def effective_label(row: InspectionRow) -> str | None:
    """The label after the override: `ok`, a defect class, or None (nothing to learn from)."""
    if row.effective_verdict == "PASS":
        return OK_LABEL
    if row.effective_verdict == "FAIL" and row.effective_class:
        return row.effective_class
    return None


def export_corrections(
    store: DefectStore,
    line: str,
    out: Path,
    sources: Sequence[Path] = (),
    snapshot_dirs: Sequence[Path] = (),
    *,
    overwrite: bool = False,
    show_progress: bool = True,
    image_bits: int | None = None,
) -> FromDbResult:
    """Write the corrected parts of `line` as a dataset folder at `out` (labels.csv + files).
    Frames of the `sources` are read with the line's `image_bits` and written as 8-bit PNG.

    Raises ValueError when the line has no corrected part or `out` exists and is not empty
    (unless `overwrite`). The folder is written beside `out` and renamed into place.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        msg = f"{out} is not empty; choose a new folder or pass overwrite=True"
        raise ValueError(msg)
    rows = corrected_rows(store, line)
    if not rows:
        msg = (
            f"line {line!r} has no operator-corrected parts in the defect log {store.url}; "
            "override parts in `inspect-app console` first"
        )
        raise ValueError(msg)
    index = _SourceIndex(sources, image_bits)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    result = FromDbResult(out, image_bits=image_bits)
    try:
        (tmp / "images").mkdir()
        (tmp / "vibration").mkdir()
        table: list[dict[str, str]] = []
        for row in tqdm(rows, desc="corrected parts", unit="part", disable=not show_progress):
            label = effective_label(row)
            if label is None:
                result.skipped.append((row.part_id, f"{row.effective_verdict} has no label"))
                continue
            written = _write_part(tmp, row, label, index, snapshot_dirs)
            if isinstance(written, str):
                result.skipped.append((row.part_id, written))
                continue
            part, csv_row = written
            result.parts.append(part)
            table.append(csv_row)
        if not result.parts:
            reasons = "; ".join(f"{p}: {why}" for p, why in result.skipped[:5])
            msg = (
                f"none of the {len(rows)} corrected parts of line {line!r} could be used: {reasons}"
            )
            raise ValueError(msg)
        with (tmp / "labels.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
            writer.writeheader()
            writer.writerows(table)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


class _SourceIndex:
    """part_id → (dataset, row index) over the source folders the line replayed, or, for a hot
    folder (`serve --watch`: files named by part id, no labels.csv), part_id → its files."""

    def __init__(self, folders: Sequence[Path], image_bits: int | None = None) -> None:
        # the line's depth, not its region: the frames are written whole (`FromDbResult.roi`)
        self.frames = FrameFormat(image_bits)
        self.found: dict[str, tuple[LineDataset, int, Path]] = {}
        self.files: dict[str, tuple[dict[str, Path], Path]] = {}
        for folder in folders:
            try:
                ds = LineDataset.open(folder, frames=self.frames)
            except DataError:
                hot = _hot_folder_files(Path(folder))
                if not hot:
                    raise
                for part_id, files in hot.items():
                    self.files.setdefault(part_id, (files, Path(folder)))
                continue
            for i, r in enumerate(ds.rows):
                self.found.setdefault(r.part_id, (ds, i, Path(folder)))

    def load(self, part_id: str) -> tuple[Sample, Path] | None:
        hit = self.found.get(part_id)
        if hit is not None:
            ds, i, folder = hit
            return ds[i], folder  # strict: a bad file raises DataError naming file and row
        hot = self.files.get(part_id)
        if hot is None:
            return None
        files, folder = hot
        sample = Sample(part_id=part_id)
        if "image" in files:
            sample.frame = self.frames.read(files["image"])  # DataError naming it
        if "vibration" in files:  # WAV carries its rate; other formats cannot be read here
            sample.vibration = read_vibration(files["vibration"])
        return sample, folder


def _hot_folder_files(folder: Path) -> dict[str, dict[str, Path]]:
    """A hot folder's parts: part id → {"image": path, "vibration": path}; empty when the
    folder holds neither (then it is no source at all and the dataset error stands). Files in
    subfolders are found by the ids `serve --watch --recursive` gave them (`2026-12-06/P1`)."""
    if not folder.is_dir() or (folder / "labels.csv").exists():
        return {}
    parts: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        hit = hot_folder_file(path.name)
        hidden = any(p.startswith(".") for p in relative.parts[:-1])
        if hit is not None and not hidden and path.is_file():
            part_id = (relative.parent / hit[0]).as_posix()
            parts.setdefault(part_id, {}).setdefault(hit[1], path)
    return parts


def _safe(part_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in part_id)[:120]


def _write_part(
    root: Path,
    row: InspectionRow,
    label: str,
    index: _SourceIndex,
    snapshot_dirs: Sequence[Path],
) -> tuple[CorrectedPart, dict[str, str]] | str:
    """Write one part's files; the row, or why it could not be written."""
    stem = f"{row.id:08d}-{_safe(row.part_id)}"
    image = vibration = None
    rate = rpm = ""
    loaded = index.load(row.part_id)
    if loaded is not None:
        sample, folder = loaded
        origin = f"source {folder}"
        if sample.frame is not None:
            image = f"images/{stem}.png"
            bgr = cv2.cvtColor(np.ascontiguousarray(sample.frame), cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(str(root / image), bgr):
                return f"could not write {root / image}"
        if sample.vibration is not None:
            vibration = f"vibration/{stem}.npy"
            np.save(root / vibration, sample.vibration.samples.astype(np.float32))
            rate = repr(float(sample.vibration.sample_rate_hz))
            rpm = "" if sample.vibration.rpm is None else repr(float(sample.vibration.rpm))
    else:
        npz = find_snapshot(row.snapshot_path, snapshot_dirs, suffix=".npz")
        if npz is None:
            return (
                "not in the given source folders and no snapshot on disk (snapshots are kept "
                "for FAIL / FAULT parts only, within the retention limit)"
            )
        origin = f"snapshot {npz}"
        with np.load(npz) as data:
            samples = np.asarray(data["samples"], dtype=np.float32)
            rate = repr(float(data["sample_rate_hz"]))
        vibration = f"vibration/{stem}.npy"
        np.save(root / vibration, samples)
    if image is None and vibration is None:
        return f"{origin}: the part has neither image nor vibration"
    part = CorrectedPart(
        row.id, row.part_id, label, row.operator_action or "", image, vibration, origin
    )
    csv_row = {
        "image": image or "",
        "vibration": vibration or "",
        "label": label,
        "sample_rate_hz": rate,
        "rpm": rpm,
        "part_id": row.part_id,
        "timestamp": row.timestamp.isoformat(),
        "split": "train",
    }
    return part, csv_row


def dataset_for_adapt(
    home: Path,
    line: str,
    db_url: str,
    sources: Sequence[Path] = (),
    show_progress: bool = True,
) -> FromDbResult:
    """What `inspect-app adapt --from-db` teaches from: the corrected parts of `line`, written to
    HOME/adapt-data/<line>/from-db-<UTC time> (snapshots searched beside the log and in HOME)."""
    from datetime import datetime, timezone

    from inspect_app.home import line_dir
    from inspect_app.lines import read_card, version_dir

    line_dir(home, line)  # refuse a line name that escapes HOME before writing anything
    try:
        card = read_card(version_dir(home, line))
        image_bits, roi = card.image_bits, card.roi
    except ValueError:  # a log of a line taught elsewhere: its frames are read as they are
        image_bits, roi = None, None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = home / "adapt-data" / line / f"from-db-{stamp}"
    snapshots = (snapshot_dir_for(db_url, home), home / "snapshots")
    with DefectStore.open(db_url) as store:
        result = export_corrections(
            store,
            line,
            out,
            sources,
            snapshots,
            show_progress=show_progress,
            image_bits=image_bits,
        )
    result.roi = roi
    return result
