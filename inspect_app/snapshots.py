"""Evidence of rejected parts on disk, beside the defect log, with a retention limit.

For each FAIL or FAULT part: `<stem>.jpg` (the frame with the heat-map overlaid and the defect
box drawn; JPEG is fast to write on the line) and `<stem>.npz` (the vibration window: `samples`,
`sample_rate_hz`). The oldest parts are deleted once the folder holds more than `max_parts` parts
or `max_bytes` bytes.

Each line writes into its own folder, `snapshots/<line>/`: several lines inspected at once on
one machine (one `serve` process each, one defect log) each keep their own retention limit, and
no process deletes what another one counts. (Before, every line wrote into `snapshots/` itself;
those files stay where the log's rows point and are still found, but no longer pruned.)
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from sqlalchemy.engine import make_url

from inspect_app.home import validate_line_name

if TYPE_CHECKING:
    from inspect_app.pipeline import InspectedPart

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
SUFFIXES = (".jpg", ".npz")
JPEG_QUALITY = 90


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep at most `max_parts` parts and `max_bytes` bytes of snapshots (oldest go first)."""

    max_parts: int = 2000
    max_bytes: int = 500 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_parts < 1 or self.max_bytes < 1:
            msg = (
                f"snapshot retention needs max_parts >= 1 and max_bytes >= 1, got "
                f"{self.max_parts} parts, {self.max_bytes} bytes"
            )
            raise ValueError(msg)


def snapshot_dir_for(db_url: str, home: Path, line: str | None = None) -> Path:
    """`snapshots/` beside a SQLite database file; HOME/snapshots for any other database.
    With `line`, that line's own folder inside it (where its snapshots are written)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        root = Path(str(url.database)).expanduser().resolve().parent / "snapshots"
    else:
        root = home / "snapshots"
    if line is None:
        return root
    validate_line_name(line)
    return root / line


def find_snapshot(
    stored: str | None, dirs: Sequence[Path], suffix: str | None = None
) -> Path | None:
    """The snapshot file a log row names, if it is still on disk (`suffix`: its `.npz` twin).

    The row's path as written; else, for a log or HOME that was moved, the same file found in
    one of `dirs` (the snapshot folders, HOME): relative to it, in its line's folder, or by
    name alone."""
    if not stored:
        return None
    path = Path(stored)
    if suffix is not None:
        path = path.with_suffix(suffix)
    if path.is_file():
        return path
    tails = [Path(path.name), Path(path.parent.name) / path.name]
    if not path.is_absolute():
        tails.insert(0, path)
    for base in dirs:
        for tail in tails:
            candidate = Path(base) / tail
            if candidate.is_file():
                return candidate
    return None


def overlay(
    frame: np.ndarray, heatmap: np.ndarray | None, box: tuple[float, ...] | None
) -> np.ndarray:
    """The RGB frame with the heat-map blended in (jet colours) and the box drawn in red."""
    image = np.ascontiguousarray(
        frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    )
    h, w = image.shape[:2]
    if heatmap is not None and heatmap.size:
        heat = cv2.resize(
            np.clip(heatmap, 0, 1).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR
        )
        colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
        colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
        alpha = 0.5 * heat
        # per-pixel blend in OpenCV: a 5-megapixel frame in 40 ms, not 180 in float64 numpy
        image = cv2.blendLinear(image, colour, 1.0 - alpha, alpha)
    if box is not None:
        x0, y0, x1, y1 = box
        p0 = (int(x0 * w), int(y0 * h))
        p1 = (max(int(x1 * w) - 1, p0[0]), max(int(y1 * h) - 1, p0[1]))
        image = cv2.rectangle(np.ascontiguousarray(image), p0, p1, (255, 0, 0), max(1, w // 128))
    return image


class SnapshotStore:
    """Writes snapshots into `root` and enforces the retention policy. Thread-safe."""

    def __init__(self, root: Path, policy: RetentionPolicy | None = None) -> None:
        self.root = Path(root)
        self.policy = policy or RetentionPolicy()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._parts: OrderedDict[str, int] = OrderedDict()  # stem → bytes, oldest first
        self._bytes = 0
        self._scan()

    def _scan(self) -> None:
        by_stem: dict[str, tuple[float, int]] = {}
        for path in self.root.iterdir():
            if path.suffix in SUFFIXES and path.is_file():
                stat = path.stat()
                mtime, size = by_stem.get(path.stem, (0.0, 0))
                by_stem[path.stem] = (max(mtime, stat.st_mtime), size + stat.st_size)
        for stem, (_, size) in sorted(by_stem.items(), key=lambda kv: (kv[1][0], kv[0])):
            self._parts[stem] = size
            self._bytes += size
        self._enforce()

    @property
    def parts(self) -> int:
        return len(self._parts)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def save(self, part: InspectedPart) -> str | None:
        """Write the part's snapshot; returns the image path (or the vibration file without one)."""
        sample = part.sample
        if sample.frame is None and sample.vibration is None:
            return None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        stem = f"{stamp}-{_UNSAFE.sub('_', sample.part_id)[:80]}-{part.verdict.verdict}"
        written: list[Path] = []
        if sample.frame is not None:
            image = overlay(sample.frame, part.heatmap, part.verdict.box)
            path = self.root / f"{stem}.jpg"
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                msg = f"could not write snapshot {path}"
                raise OSError(msg)
            written.append(path)
        if sample.vibration is not None:
            path = self.root / f"{stem}.npz"
            np.savez(
                path,
                samples=sample.vibration.samples.astype(np.float32),
                sample_rate_hz=np.float64(sample.vibration.sample_rate_hz),
            )
            written.append(path)
        size = sum(p.stat().st_size for p in written)
        with self._lock:
            self._parts[stem] = size
            self._bytes += size
            self._enforce()
        return str(written[0])

    def _enforce(self) -> None:
        while self._parts and (
            len(self._parts) > self.policy.max_parts or self._bytes > self.policy.max_bytes
        ):
            stem, size = self._parts.popitem(last=False)
            self._bytes -= size
            for suffix in SUFFIXES:
                (self.root / f"{stem}{suffix}").unlink(missing_ok=True)
