"""What the console shows, as plain data: parts, counters, source health, log pages, overrides.

No Qt here. The workers build these values off the GUI thread and send them to the window through
signals; the widgets only draw them. Keeping them plain makes them safe to pass between threads
and easy to test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from inspect_app.store import InspectionRow

TIME_WINDOWS: dict[str, timedelta | None] = {
    "any time": None,
    "last 10 min": timedelta(minutes=10),
    "last hour": timedelta(hours=1),
    "last 8 h (shift)": timedelta(hours=8),
    "last 24 h": timedelta(hours=24),
}
"""The defect log's time filter: label shown → how far back from now."""

OVERRIDE_ACTIONS: dict[str, str] = {
    "confirm": "Confirm defect",
    "false_alarm": "False alarm (part is good)",
    "relabel": "Relabel class",
}
"""Store action → what the operator reads."""


# a region picked on screen smaller than this, in camera pixels on a side, is a slip of the hand
MIN_REGION_PX = 8


@dataclass(frozen=True)
class FrameGeometry:
    """Where the frame on screen lies in the camera's frame: its size in camera pixels (after
    the line's region of interest, if it has one) and that region's top-left corner."""

    width: int
    height: int
    x0: int = 0
    y0: int = 0


def region_in_camera(
    fractions: tuple[float, float, float, float], geometry: FrameGeometry
) -> tuple[int, int, int, int] | None:
    """A rectangle drawn on the frame on screen (two corners as fractions of it, in any order)
    as `X, Y, W, H` in pixels of the camera's frame, what `adapt --roi` takes: clipped to the
    frame, rounded outward to whole pixels. None when under MIN_REGION_PX on a side."""
    fx0, fy0, fx1, fy1 = fractions
    left, right = sorted((min(max(fx0, 0.0), 1.0), min(max(fx1, 0.0), 1.0)))
    top, bottom = sorted((min(max(fy0, 0.0), 1.0), min(max(fy1, 0.0), 1.0)))
    x0 = int(np.floor(left * geometry.width))
    y0 = int(np.floor(top * geometry.height))
    x1 = int(np.ceil(right * geometry.width))
    y1 = int(np.ceil(bottom * geometry.height))
    if x1 - x0 < MIN_REGION_PX or y1 - y0 < MIN_REGION_PX:
        return None
    return geometry.x0 + x0, geometry.y0 + y0, x1 - x0, y1 - y0


@dataclass(frozen=True)
class PartView:
    """The part on screen: its verdict and the evidence (frame, heat-map overlay, spectrum).

    `image` is RGB uint8 (H, W, 3) with the heat-map already blended in (FAIL parts only);
    `box` is (x0, y0, x1, y1) in 0..1 of the frame. `spectrum_hz` / `spectrum_db` are the
    vibration window's Welch PSD (None without vibration).
    """

    line: str
    model_version: str
    part_id: str
    verdict: str
    defect_class: str | None
    defect_score: float | None
    threshold: float
    fault_reason: str | None
    inspection_id: int | None
    image: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    spectrum_hz: np.ndarray | None = None
    spectrum_db: np.ndarray | None = None
    geometry: FrameGeometry | None = None  # the frame in the camera's pixels (None: no frame)


@dataclass(frozen=True)
class SourceHealth:
    """The source as the operator needs it: is it delivering, and how often did it break."""

    state: str  # "idle", "loading", "running", "reconnecting", "ended", "stopped", "error"
    source: str = ""
    reconnects: int = 0
    gaps: int = 0
    failed_reads: int = 0
    detail: str = ""
    repeated_frames: int = 0  # frames identical to the one before: a frozen feed


@dataclass(frozen=True)
class CounterView:
    """The counters row. Counts are this session's, as committed to the defect log."""

    line: str
    parts: int = 0
    passed: int = 0
    fails: int = 0
    faults: int = 0
    parts_per_s: float = 0.0
    dropped: int = 0
    fault_run: int = 0  # the latest parts that could not be inspected, in a row
    last_fault: str | None = None  # the latest one's reason

    @property
    def yield_pct(self) -> float | None:
        """PASS / parts in percent (None before the first part). FAULT parts are not good."""
        return 100.0 * self.passed / self.parts if self.parts else None


@dataclass(frozen=True)
class LogQuery:
    """One page of the defect log with the table's filters."""

    line: str | None = None
    verdict: str | None = None
    defect_class: str | None = None
    window: str = "any time"  # a key of TIME_WINDOWS
    to_check: bool = False  # passed parts picked for a check and not yet checked
    page: int = 0
    page_size: int = 50
    serial: int = 0  # answers to an older request are ignored by the table

    def __post_init__(self) -> None:
        if self.window not in TIME_WINDOWS:
            msg = f"time window {self.window!r} is not one of {list(TIME_WINDOWS)}"
            raise ValueError(msg)
        if self.page < 0 or self.page_size < 1:
            msg = f"page {self.page} must be >= 0 and page_size {self.page_size} >= 1"
            raise ValueError(msg)

    def since(self, now: datetime | None = None) -> datetime | None:
        """The start of the time window (aware UTC), or None for any time."""
        span = TIME_WINDOWS[self.window]
        if span is None:
            return None
        return (now or datetime.now(timezone.utc)) - span


@dataclass(frozen=True)
class LogPage:
    """A page of the defect log as read by the log worker."""

    query: LogQuery
    rows: tuple[InspectionRow, ...]
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.page_size))


@dataclass(frozen=True)
class OverrideRequest:
    """The operator's correction of one inspected part."""

    inspection_id: int
    action: str  # a key of OVERRIDE_ACTIONS
    operator: str
    note: str = ""
    new_class: str | None = None

    def __post_init__(self) -> None:
        if self.action not in OVERRIDE_ACTIONS:
            msg = f"override action {self.action!r} is not one of {list(OVERRIDE_ACTIONS)}"
            raise ValueError(msg)


@dataclass(frozen=True)
class OverrideOutcome:
    """What became of an override: saved (with the row as it now reads) or refused, and why."""

    request: OverrideRequest
    row: InspectionRow | None
    error: str | None = None


@dataclass
class DisplayRate:
    """Parts the window actually drew per second (vs. the pipeline's parts per second).

    The window redraws the newest part on a timer, so under load it shows fewer parts than the
    pipeline inspects; every part still reaches the counters and the defect log.
    """

    shown: int = 0
    first: float | None = None
    last: float | None = None

    def record(self, now: float) -> None:
        self.shown += 1
        if self.first is None:
            self.first = now
        self.last = now

    @property
    def per_s(self) -> float:
        if self.first is None or self.last is None or self.last <= self.first:
            return 0.0
        return (self.shown - 1) / (self.last - self.first)
