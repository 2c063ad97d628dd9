"""Write a synthetic line as a dataset folder in the project's `labels.csv` contract.

```
out_dir/
  labels.csv    image, vibration, label, sample_rate_hz, rpm, mask, part_id, timestamp, split,
                meta_severity
  images/       <part_id>.png or .jpg
  masks/        <part_id>_mask.png (255 = defect), only where the defect is visible
  vibration/    <part_id>.npy (acceleration in g) or .wav (16-bit PCM, full scale
                = wav_full_scale_g)
  line.json     the LineSpec the folder was drawn from, for reference
```
"""

from __future__ import annotations

import csv
import json
import wave
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np

from sensors.synthetic.catalog import MODALITIES
from sensors.synthetic.line import SyntheticPart, draw_labels, make_part
from sensors.synthetic.spec import LineSpec

COLUMNS = (
    "image",
    "vibration",
    "label",
    "sample_rate_hz",
    "rpm",
    "mask",
    "part_id",
    "timestamp",
    "split",
    "meta_severity",
)
IMAGE_FORMATS = ("png", "jpg")
VIBRATION_FORMATS = ("npy", "npy16", "wav")
LINE_START = datetime(2026, 1, 5, 6, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class WriteOptions:
    """How the files are stored. The defaults favour fidelity; the sample data favours size."""

    image_format: str = "png"
    jpeg_quality: int = 90
    vibration_format: str = "npy"  # npy: float32; npy16: float16 (half the size); wav: int16
    wav_full_scale_g: float = 10.0

    def __post_init__(self) -> None:
        if self.image_format not in IMAGE_FORMATS:
            msg = f"image_format {self.image_format!r}: expected one of {IMAGE_FORMATS}"
            raise ValueError(msg)
        if self.vibration_format not in VIBRATION_FORMATS:
            msg = f"vibration_format {self.vibration_format!r}: expected one of {VIBRATION_FORMATS}"
            raise ValueError(msg)
        if not 1 <= self.jpeg_quality <= 100:
            msg = f"jpeg_quality must be within 1..100, got {self.jpeg_quality}"
            raise ValueError(msg)


@dataclass(frozen=True)
class WrittenLine:
    """What `write_line` wrote."""

    folder: Path
    spec: LineSpec
    counts: dict[str, int]  # parts per label
    n_masks: int

    @property
    def n_parts(self) -> int:
        return sum(self.counts.values())


def write_line(
    out_dir: str | Path,
    line_seed: int,
    parts: int,
    defect_fraction: float = 0.15,
    *,
    start_index: int = 0,
    split: str | None = None,
    modalities: tuple[str, ...] = MODALITIES,
    classes: tuple[str, ...] | None = None,
    n_classes: int | None = None,
    image_size: int = 256,
    sample_rate_hz: float = 25600.0,
    duration_s: float = 1.0,
    housing_hz: float | None = None,
    options: WriteOptions | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> WrittenLine:
    """Generate `parts` parts of line `line_seed` and write them as a dataset folder.

    Parts are numbered from `start_index`, so two calls with disjoint ranges (e.g. an adaptation
    set and a stream to replay) hold different parts of the same line. `progress(n)` is called
    after each part. `housing_hz`: `LineSpec.from_seed`'s.
    """
    options = options or WriteOptions()
    folder = Path(out_dir)
    if split not in (None, "train", "test"):
        msg = f"split {split!r}: expected train, test or none"
        raise ValueError(msg)
    if (folder / "labels.csv").exists() and not overwrite:
        msg = f"{folder / 'labels.csv'} exists; choose an empty folder or pass overwrite"
        raise ValueError(msg)
    spec = LineSpec.from_seed(
        line_seed,
        modalities=modalities,
        classes=classes,
        n_classes=n_classes,
        image_size=image_size,
        sample_rate_hz=sample_rate_hz,
        duration_s=duration_s,
        housing_hz=housing_hz,
    )
    labels = draw_labels(spec, parts, defect_fraction, start_index)
    for sub in ("images", "masks", "vibration"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    n_masks = 0
    for k, label in enumerate(labels):
        part = make_part(spec, start_index + k, label)
        row = _write_part(folder, part, options, split)
        n_masks += bool(row["mask"])
        rows.append(row)
        if progress is not None:
            progress(1)
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "line.json").write_text(json.dumps(asdict(spec), indent=1) + "\n", encoding="utf-8")
    return WrittenLine(folder=folder, spec=spec, counts=dict(Counter(labels)), n_masks=n_masks)


def _write_part(
    folder: Path, part: SyntheticPart, options: WriteOptions, split: str | None
) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        part_id=part.part_id,
        label=part.label,
        split=split or "",
        meta_severity=f"{part.severity:.3f}",
        timestamp=(LINE_START + timedelta(seconds=part.timestamp_s)).isoformat(),
    )
    if part.image is not None:
        name = f"images/{part.part_id}.{options.image_format}"
        # the JPEG quality only for JPEG: OpenCV warns once per file about a key a PNG lacks
        jpeg = options.image_format in ("jpg", "jpeg")
        params = [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality] if jpeg else []
        _imwrite(folder / name, cv2.cvtColor(part.image, cv2.COLOR_RGB2BGR), params)
        row["image"] = name
    if part.mask is not None:
        name = f"masks/{part.part_id}_mask.png"
        _imwrite(folder / name, part.mask.astype(np.uint8) * 255, [])
        row["mask"] = name
    if part.vibration is not None:
        row["vibration"] = _write_vibration(folder, part, options)
        row["sample_rate_hz"] = f"{part.sample_rate_hz:g}"
        row["rpm"] = f"{part.rpm:.1f}"
    return row


def _imwrite(path: Path, image: np.ndarray, params: list[int]) -> None:
    if not cv2.imwrite(str(path), image, params):
        msg = f"could not write image {path}"
        raise OSError(msg)


def _write_vibration(folder: Path, part: SyntheticPart, options: WriteOptions) -> str:
    assert part.vibration is not None
    if options.vibration_format == "wav":
        name = f"vibration/{part.part_id}.wav"
        scaled = np.clip(part.vibration / options.wav_full_scale_g, -1, 1) * 32767
        with wave.open(str(folder / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(round(part.sample_rate_hz))
            w.writeframes(np.round(scaled).astype("<i2").tobytes())
        return name
    name = f"vibration/{part.part_id}.npy"
    dtype = np.float16 if options.vibration_format == "npy16" else np.float32
    np.save(folder / name, part.vibration.astype(dtype))
    return name
