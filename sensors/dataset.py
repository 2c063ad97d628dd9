"""The dataset contract (DESIGN §3): a folder of parts, read as `Sample`s.

Three layouts, tried in this order:

1. `labels.csv` (UTF-8, header row) with the contract's columns; paths are relative to the folder.
   Comma-separated; a header without a comma but with `;` or tabs sets that delimiter instead
   (a spreadsheet saving CSV where the comma is the decimal mark), and its numbers may then
   use a decimal comma (`1154,7`).
2. MVTec AD: `train/good/*`, `test/<class>/*`, `ground_truth/<class>/<stem>_mask.png` (a class
   without a `ground_truth/<class>/` folder has no masks).
3. class-per-folder: `<class>/*` (images or WAV); a folder named `good`, `ok` or `normal` is `ok`.

Beyond the contract's columns, `labels.csv` may carry:
- `boxes`: a Pascal VOC XML file of bounding boxes (as NEU-DET ships); the boxes are read into the
  part's mask (True inside any box) when the row has no `mask`; coarse, but it localizes.
- descriptive columns that public datasets carry (`fault_diameter_in`, `motor_load_hp` in CWRU) and
  any column named `meta_*`: kept as text in `Sample.meta`, never interpreted.
Any other column is refused (a misspelt `lable` must not silently become metadata).
A `label` of `good` or `normal`, in any case (or `OK`), is `ok`, as the folder layouts read them:
a good part must never be taught as a defect class named "good".

Table problems (unknown column, a row with neither image nor vibration, a number that is not one,
a vibration file type that needs `sample_rate_hz` without it) raise `DataError` when the dataset
is opened. File problems (missing, unreadable, truncated, NaN samples) surface when the part is
read: `ds[i]` raises, `ds.load(i, strict=False)` returns the part with `fault` set. A mask that
cannot be read (missing, unreadable, another size than its image) is a problem of the ground
truth, not of the part: `ds.load(i, strict=False)` returns the part readable, without a mask and
with `mask_problem` set, so that evaluation still inspects it. Row numbers are the line numbers in
`labels.csv` as a spreadsheet shows them (the header is row 1).
"""

from __future__ import annotations

import csv
import difflib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from sensors.camera import (
    IMAGE_SUFFIXES,
    FrameFormat,
    image_sample_bits,
    read_image,
    read_mask,
)
from sensors.errors import DataError
from sensors.sample import OK_LABEL, Sample, VibrationWindow
from sensors.vibration import TEXT_SUFFIXES, VIBRATION_SUFFIXES, is_text_table, read_vibration

CONTRACT_COLUMNS = (
    "image",
    "vibration",
    "label",
    "sample_rate_hz",
    "mask",
    "part_id",
    "timestamp",
    "rpm",
    "channel",
    "split",
)
BOXES_COLUMN = "boxes"
DESCRIPTIVE_COLUMNS = ("fault_diameter_in", "motor_load_hp")
META_PREFIX = "meta_"
SPLITS = ("train", "test")
GOOD_FOLDERS = ("good", "ok", "normal")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# WAV headers and text tables with a time column (`t,a`) carry their own rate
_RATE_FROM_FILE = (".wav", *TEXT_SUFFIXES)


@dataclass(frozen=True)
class PartRow:
    """Where one part's data lives. `row` is the labels.csv row (None for folder layouts).

    With `window_s`, a long recording is several parts: `window` is `(k, start, length)` in
    samples, and `part_id` is `<row part>#<k>`.
    """

    part_id: str
    image: Path | None = None
    vibration: Path | None = None
    label: str | None = None
    sample_rate_hz: float | None = None
    mask: Path | None = None
    boxes: Path | None = None
    timestamp: float = 0.0
    rpm: float | None = None
    channel: str | None = None
    split: str | None = None
    row: int | None = None
    window: tuple[int, int, int] | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> Path | None:
        """The file an error about this part names: labels.csv's rows name the table."""
        return self.image or self.vibration


class LineDataset:
    """A dataset folder as an indexable sequence of parts.

    >>> ds = LineDataset.open("../shared/data/cwru", window_s=1.0)
    >>> sample = ds[0]                  # raises DataError naming file and row
    >>> sample = ds.load(3, strict=False)  # a bad part comes back with `fault` set
    """

    def __init__(self, folder: Path, rows: list[PartRow], layout: str, table: Path | None) -> None:
        self.folder = folder
        self.rows = rows
        self.layout = layout
        self.table = table
        self.unused_tail_s = 0.0  # recording time after the last whole window, summed
        # how a line reads its frames: 16-bit depth, region of interest (frames and masks)
        self.frames = FrameFormat()
        # the last recording read: windows of one recording are usually read one after another
        self._recent: tuple[tuple[object, ...], VibrationWindow] | None = None

    # --- opening ---

    @classmethod
    def open(
        cls,
        folder: str | Path,
        window_s: float | None = None,
        frames: FrameFormat | None = None,
    ) -> LineDataset:
        """Read the folder's part list (no file of a part is read yet). `window_s` cuts long
        recordings into parts; `frames` reads frames as a line taught on them does (16-bit
        depth, region of interest)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError("dataset folder not found", folder)
        if window_s is not None and not window_s > 0:
            raise DataError(
                f"window_s must be a positive number of seconds, got {window_s}", folder
            )
        table = folder / "labels.csv"
        if table.is_file():
            ds = cls(folder, _read_table(folder, table), "labels.csv", table)
        elif (folder / "train" / "good").is_dir() and (folder / "test").is_dir():
            ds = cls(folder, _read_mvtec(folder), "mvtec", None)
        else:
            ds = cls(folder, _read_class_folders(folder), "class-per-folder", None)
        if window_s is not None:
            ds._cut_windows(window_s)
        _check_unique_ids(ds)
        ds.frames = frames or FrameFormat()
        return ds

    # --- access ---

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Sample:
        return self.load(index, strict=True)

    def __iter__(self) -> Iterator[Sample]:
        """Every part, bad ones with `fault` set (iteration never stops at a bad file)."""
        for i in range(len(self)):
            yield self.load(i, strict=False)

    def image_sample_bits(self, indices: Sequence[int]) -> int:
        """The most bits the frames of parts `indices` fill (`camera.image_sample_bits`; 8
        when none has a 16-bit frame). A file that cannot be read raises its DataError."""
        bits = 8
        for i in indices:
            row = self.rows[i]
            if row.image is None:
                continue
            try:
                bits = max(bits, image_sample_bits(row.image))
            except DataError as exc:
                raise DataError(exc.problem, exc.path or row.where, row.row) from exc
        return bits

    @property
    def labels(self) -> list[str | None]:
        return [r.label for r in self.rows]

    @property
    def classes(self) -> list[str]:
        """Defect classes present, sorted, `ok` excluded."""
        return sorted({r.label for r in self.rows if r.label and r.label != OK_LABEL})

    def load(self, index: int, strict: bool = True) -> Sample:
        """Read part `index`. strict: raise DataError; else return the part with `fault` set."""
        row = self.rows[index]
        try:
            return self._read(row, strict)
        except DataError as exc:
            error = DataError(exc.problem, exc.path or row.where, row.row)
            if strict:
                raise error from exc
            return Sample(
                part_id=row.part_id,
                timestamp=row.timestamp,
                label=row.label,
                fault=str(error),
                meta=dict(row.meta),
            )

    def _read(self, row: PartRow, strict: bool = True) -> Sample:
        frame = read_image(row.image, self.frames.bits) if row.image is not None else None
        vibration = self._read_window(row) if row.vibration is not None else None
        mask, mask_problem = None, None
        try:
            mask = self._read_mask(row, frame)
        except DataError as exc:
            if strict:
                raise
            # the mask is ground truth, not a sensor reading: the part is still inspected
            mask_problem = str(DataError(exc.problem, exc.path or row.where, row.row))
        if frame is not None:  # boxes and masks were read on the whole frame
            frame = self.frames.crop(frame, row.image)
            mask = None if mask is None else self.frames.crop(mask, row.mask or row.boxes)
        return Sample(
            part_id=row.part_id,
            frame=frame,
            vibration=vibration,
            timestamp=row.timestamp,
            label=row.label,
            mask=mask,
            meta=dict(row.meta),
            mask_problem=mask_problem,
        )

    @staticmethod
    def _read_mask(row: PartRow, frame: np.ndarray | None) -> np.ndarray | None:
        """The row's defect mask (from `mask` or VOC `boxes`), checked against its frame's size."""
        mask = None
        if row.mask is not None:
            mask = read_mask(row.mask)
        elif row.boxes is not None:
            shape = frame.shape[:2] if frame is not None else None
            mask = read_voc_boxes_mask(row.boxes, shape)
        if mask is not None and frame is not None and mask.shape != frame.shape[:2]:
            msg = (
                f"mask is {mask.shape[1]}x{mask.shape[0]}, image {frame.shape[1]}x{frame.shape[0]}"
            )
            raise DataError(msg, row.mask or row.boxes)
        return mask

    def _read_window(self, row: PartRow) -> VibrationWindow:
        if row.vibration is None:
            raise DataError("part has no vibration file", row.where)
        if row.window is None:
            return read_vibration(row.vibration, row.sample_rate_hz, row.channel, row.rpm)
        key = (row.vibration, row.sample_rate_hz, row.channel, row.rpm)
        recent = self._recent
        if recent is not None and recent[0] == key:
            full = recent[1]
        else:
            full = read_vibration(row.vibration, row.sample_rate_hz, row.channel, row.rpm)
            self._recent = (key, full)
        k, start, length = row.window
        if start + length > full.samples.shape[0]:
            msg = (
                f"recording of {full.duration_s:.3f} s is shorter than window {k} "
                f"({length / full.sample_rate_hz:.3f} s from {start / full.sample_rate_hz:.3f} s)"
            )
            raise DataError(msg, row.vibration)
        return replace(full, samples=full.samples[start : start + length].copy())

    # --- windows ---

    def _cut_windows(self, window_s: float) -> None:
        out: list[PartRow] = []
        for row in self.rows:
            if row.vibration is None:
                out.append(row)
                continue
            try:
                full = read_vibration(row.vibration, row.sample_rate_hz, row.channel, row.rpm)
            except DataError:
                out.append(row)  # kept whole: it faults (or raises) when read, never vanishes
                continue
            length = round(window_s * full.sample_rate_hz)
            count = full.samples.shape[0] // length
            if count == 0:  # too short for one window: one part that says so when read
                out.append(replace(row, part_id=f"{row.part_id}#0", window=(0, 0, length)))
                continue
            self.unused_tail_s += (full.samples.shape[0] - count * length) / full.sample_rate_hz
            for k in range(count):
                out.append(
                    replace(
                        row,
                        part_id=f"{row.part_id}#{k}",
                        timestamp=row.timestamp + k * length / full.sample_rate_hz,
                        window=(k, k * length, length),
                    )
                )
        self.rows = out


def read_voc_boxes_mask(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A Pascal VOC annotation's boxes as a bool mask (True inside any box)."""
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(f"unreadable Pascal VOC XML ({exc})", path) from exc
    if shape is None:
        size = root.find("size")
        if size is None:
            raise DataError("no <size> in Pascal VOC XML and no image to take it from", path)
        shape = (int(size.findtext("height", "0")), int(size.findtext("width", "0")))
    mask = np.zeros(shape, dtype=bool)
    for box in root.iter("bndbox"):
        try:
            x0, y0, x1, y1 = (
                int(float(box.findtext(k, ""))) for k in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError:
            raise DataError("a <bndbox> lacks numeric xmin/ymin/xmax/ymax", path) from None
        # VOC corners are 1-based and inclusive
        mask[max(y0 - 1, 0) : max(y1, 0), max(x0 - 1, 0) : max(x1, 0)] = True
    return mask


# --- layouts ---------------------------------------------------------------------------------


def _delimiter(header_line: str) -> str:
    """labels.csv's delimiter, from its header: `,`; or `;` (a spreadsheet saving CSV where the
    comma is the decimal mark) or tab, when the header has no comma but one of those."""
    if "," not in header_line:
        for delimiter in (";", "\t"):
            if delimiter in header_line:
                return delimiter
    return ","


def _read_table(folder: Path, table: Path) -> list[PartRow]:
    try:
        with table.open(newline="", encoding="utf-8-sig") as handle:
            delimiter = _delimiter(handle.readline())
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=delimiter)
            header = list(reader.fieldnames or [])
            _check_columns(table, header)
            raw_rows = list(reader)
    except UnicodeDecodeError as exc:
        raise DataError(f"labels.csv is not UTF-8 ({exc.reason})", table) from exc
    except csv.Error as exc:
        raise DataError(f"malformed CSV ({exc})", table) from exc
    rows = []
    for i, raw in enumerate(raw_rows):
        rows.append(_parse_row(folder, table, raw, row=i + 2, decimal_comma=delimiter != ","))
    if not rows:
        raise DataError("labels.csv has no rows", table)
    _check_label_spellings(rows, table)
    return rows


def _check_label_spellings(rows: list[PartRow], table: Path) -> None:
    """Refuse one class written two ways (`dent`, `Dent`): it would be taught as two classes."""
    first: dict[str, PartRow] = {}
    for r in rows:
        if r.label is None:
            continue
        seen = first.setdefault(r.label.lower(), r)
        if seen.label != r.label:
            msg = (
                f"label {r.label!r} differs from {seen.label!r} (row {seen.row}) only in case: "
                "write one class one way"
            )
            raise DataError(msg, table, r.row)


def _check_columns(table: Path, header: list[str]) -> None:
    if not header:
        raise DataError("labels.csv has no header row", table, 1)
    known = (*CONTRACT_COLUMNS, BOXES_COLUMN, *DESCRIPTIVE_COLUMNS)
    for name in header:
        if name in known or name.startswith(META_PREFIX):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        msg = (
            f"unknown column {name!r}{hint}; expected columns of {', '.join(CONTRACT_COLUMNS)}, "
            f"or {BOXES_COLUMN}, or names starting with {META_PREFIX!r}"
        )
        raise DataError(msg, table, 1)
    if "image" not in header and "vibration" not in header:
        raise DataError("labels.csv needs an image or a vibration column", table, 1)
    duplicates = {n for n in header if header.count(n) > 1}
    if duplicates:
        raise DataError(f"duplicate columns {sorted(duplicates)}", table, 1)


def _parse_row(
    folder: Path,
    table: Path,
    raw: dict[str | None, str | list[str] | None],
    row: int,
    decimal_comma: bool = False,
) -> PartRow:
    if None in raw:
        raise DataError("more fields than columns in the header", table, row)

    def text(name: str) -> str:
        value = raw.get(name)
        if value is None:  # fewer fields than columns
            if name in raw:
                raise DataError("fewer fields than columns in the header", table, row)
            return ""
        return str(value).strip()

    def path_of(name: str) -> Path | None:
        value = text(name)
        if not value:
            return None
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise DataError(
                f"{name} path {value!r} must be relative, inside the dataset", table, row
            )
        return folder / value

    def number(name: str) -> float | None:
        value = text(name)
        if not value:
            return None
        try:
            parsed = float(value.replace(",", ".") if decimal_comma else value)
        except ValueError:
            raise DataError(f"{name} {value!r} is not a number", table, row) from None
        if not np.isfinite(parsed) or parsed <= 0:
            raise DataError(f"{name} must be a positive number, got {value!r}", table, row)
        return parsed

    image, vibration = path_of("image"), path_of("vibration")
    if image is None and vibration is None:
        raise DataError("row has neither an image nor a vibration file", table, row)
    if image is not None and image.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"image {image.name!r}: expected one of {IMAGE_SUFFIXES}", table, row)
    rate = number("sample_rate_hz")
    if vibration is not None:
        suffix = vibration.suffix.lower()
        if suffix not in VIBRATION_SUFFIXES:
            # a name that says no format (IMS snapshots are named by their time): a text table
            if not (vibration.is_file() and is_text_table(vibration)):
                msg = (
                    f"vibration {vibration.name!r}: expected one of {VIBRATION_SUFFIXES}, or a "
                    "text table of numbers under any name"
                )
                raise DataError(msg, table, row)
            suffix = ".txt"
        if rate is None and suffix not in _RATE_FROM_FILE:
            msg = f"unknown sample rate for {vibration.name!r}: fill the sample_rate_hz column"
            raise DataError(msg, table, row)
    label = text("label") or None
    if label is not None and not _SLUG.match(label):
        raise DataError(f"label {label!r} is not a class slug (letters, digits, _ . -)", table, row)
    if label is not None and label.lower() in GOOD_FOLDERS:
        label = OK_LABEL  # `OK`, `good`, `Normal`: a good part, as in the folder layouts
    split = text("split") or None
    if split is not None and split not in SPLITS:
        raise DataError(f"split {split!r}: expected one of {SPLITS}", table, row)
    first = image if image is not None else vibration
    meta = {
        str(k): text(str(k))
        for k in raw
        if k is not None and (k in DESCRIPTIVE_COLUMNS or k.startswith(META_PREFIX))
    }
    if split:
        meta["split"] = split
    return PartRow(
        part_id=text("part_id") or _default_part_id(folder, first),
        image=image,
        vibration=vibration,
        label=label,
        sample_rate_hz=rate,
        mask=path_of("mask"),
        boxes=path_of(BOXES_COLUMN),
        timestamp=_timestamp(text("timestamp"), table, row, decimal_comma),
        rpm=number("rpm"),
        channel=text("channel") or None,
        split=split,
        row=row,
        meta=meta,
    )


def _default_part_id(folder: Path, first: Path | None) -> str:
    """The data file's path inside the dataset, without its suffix: unique and readable."""
    if first is None:  # unreachable: the caller refused rows with neither file
        msg = "row has neither an image nor a vibration file"
        raise DataError(msg, folder)
    return first.relative_to(folder).with_suffix("").as_posix()


def _timestamp(value: str, table: Path, row: int, decimal_comma: bool = False) -> float:
    """Seconds (a number) or an ISO 8601 date-time; empty is 0."""
    if not value:
        return 0.0
    try:
        return float(value.replace(",", ".") if decimal_comma else value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        msg = f"timestamp {value!r}: expected seconds or an ISO 8601 date-time"
        raise DataError(msg, table, row) from None


def _read_mvtec(folder: Path) -> list[PartRow]:
    rows = []
    for split in ("train", "test"):
        for class_dir in sorted(p for p in (folder / split).iterdir() if p.is_dir()):
            label = OK_LABEL if class_dir.name == "good" else class_dir.name
            # a folder without ground_truth/<class>/ has no masks for that class (no pixel
            # metrics); one that has it must hold every part's mask
            masks = folder / "ground_truth" / class_dir.name
            for image in _images(class_dir):
                mask = masks / f"{image.stem}_mask.png" if masks.is_dir() else None
                rows.append(
                    PartRow(
                        part_id=f"{split}/{class_dir.name}/{image.stem}",
                        image=image,
                        label=label,
                        mask=mask if label != OK_LABEL else None,
                        split=split,
                        meta={"split": split},
                    )
                )
    if not rows:
        raise DataError("MVTec layout without images in train/ or test/", folder)
    return rows


def _read_class_folders(folder: Path) -> list[PartRow]:
    rows = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = OK_LABEL if class_dir.name.lower() in GOOD_FOLDERS else class_dir.name
        for path in sorted(class_dir.iterdir()):
            suffix = path.suffix.lower()
            part_id = f"{class_dir.name}/{path.stem}"
            if suffix in IMAGE_SUFFIXES:
                rows.append(PartRow(part_id=part_id, image=path, label=label))
            elif suffix == ".wav":
                rows.append(PartRow(part_id=part_id, vibration=path, label=label))
    if not rows:
        msg = (
            "not a dataset: no labels.csv, no MVTec layout (train/good, test/<class>), and no "
            "class folders holding images or WAV files"
        )
        raise DataError(msg, folder)
    return rows


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _check_unique_ids(ds: LineDataset) -> None:
    seen: dict[str, int | None] = {}
    for row in ds.rows:
        if row.part_id in seen:
            msg = f"part_id {row.part_id!r} repeats row {seen[row.part_id]}"
            raise DataError(msg, ds.table or ds.folder, row.row)
        seen[row.part_id] = row.row
