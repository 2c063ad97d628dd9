"""Pairing camera frames with vibration windows into parts, by trigger or by timestamp.

Both streams arrive in their own order and at their own pace. A `Pairer` holds what is still
waiting for its partner in bounded buffers and hands back `Pair`s. Nothing is lost silently: an
item whose partner can no longer arrive (the other stream has moved past it), or that is pushed
out of a full buffer, comes back as a one-sided `Pair` with `reason` set, and is counted in
`stats`. The pipeline decides what a one-sided part is (the model works with one modality; a
line that needs both can mark it FAULT).

Two ways to match:
- `by="trigger"`: each item carries the part's trigger count (a PLC pulse, a light barrier);
  equal counts pair. Counts must increase on each stream.
- `by="timestamp"`: a frame pairs with the window whose time span, widened by `tolerance_s`,
  holds the frame's timestamp (the nearest one when several do). Both clocks must be the same.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from sensors.camera import Frame
from sensors.vibration import TimedWindow


@dataclass(frozen=True)
class Pair:
    """One part's frame and vibration window; one side is None (and `reason` set) if unpaired."""

    frame: Frame | None
    vibration: TimedWindow | None
    trigger: int | None = None
    reason: str | None = None

    @property
    def complete(self) -> bool:
        return self.frame is not None and self.vibration is not None


@dataclass
class PairingStats:
    """Counters a pipeline can show."""

    paired: int = 0
    unpaired_frames: int = 0  # partner never came (stream moved past, or flushed)
    unpaired_windows: int = 0
    overflow_frames: int = 0  # pushed out of a full buffer (a subset of unpaired_*)
    overflow_windows: int = 0


@dataclass
class _Pending:
    key: float  # trigger count or timestamp
    end: float  # last key this item can still pair with
    trigger: int | None
    frame: Frame | None = None
    window: TimedWindow | None = None


class Pairer:
    """Pairs frames and vibration windows with bounded buffers (`max_pending` per stream)."""

    def __init__(
        self,
        by: Literal["trigger", "timestamp"] = "timestamp",
        tolerance_s: float = 0.25,
        max_pending: int = 32,
    ) -> None:
        if by not in ("trigger", "timestamp"):
            msg = f"by must be 'trigger' or 'timestamp', got {by!r}"
            raise ValueError(msg)
        if max_pending < 1:
            msg = f"max_pending must be at least 1, got {max_pending}"
            raise ValueError(msg)
        self.by = by
        self.tolerance_s = tolerance_s
        self.max_pending = max_pending
        self.stats = PairingStats()
        self._frames: deque[_Pending] = deque()
        self._windows: deque[_Pending] = deque()
        self._last_frame_key = float("-inf")
        self._last_window_key = float("-inf")

    @property
    def pending(self) -> tuple[int, int]:
        """(frames, windows) waiting for a partner."""
        return len(self._frames), len(self._windows)

    def add_frame(self, frame: Frame, trigger: int | None = None) -> list[Pair]:
        """Offer a frame; returns the pairs (complete or given up) this makes ready."""
        key = self._key(trigger, frame.timestamp)
        entry = _Pending(key, key + self._slack(), trigger, frame=frame)
        self._last_frame_key = max(self._last_frame_key, key)
        out = self._expire_windows()
        match = self._best(self._windows, entry)
        if match is not None:
            self._windows.remove(match)
            out.append(self._pair(entry, match))
        else:
            out += self._push(self._frames, entry, is_frame=True)
        return out

    def add_window(self, window: TimedWindow, trigger: int | None = None) -> list[Pair]:
        """Offer a vibration window; returns the pairs this makes ready."""
        key = self._key(trigger, window.start_s)
        end = key if self.by == "trigger" else window.end_s
        entry = _Pending(key, end + self._slack(), trigger, window=window)
        self._last_window_key = max(self._last_window_key, key)
        out = self._expire_frames()
        match = self._best(self._frames, entry)
        if match is not None:
            self._frames.remove(match)
            out.append(self._pair(match, entry))
        else:
            out += self._push(self._windows, entry, is_frame=False)
        return out

    def flush(self) -> list[Pair]:
        """Give up on everything pending (end of stream); each comes back one-sided."""
        out = [self._unpaired(e, True, "stream ended") for e in self._frames]
        out += [self._unpaired(e, False, "stream ended") for e in self._windows]
        self._frames.clear()
        self._windows.clear()
        return out

    # --- matching ---

    def _key(self, trigger: int | None, timestamp: float) -> float:
        if self.by == "trigger":
            if trigger is None:
                msg = "pairing by trigger needs the trigger count of every frame and window"
                raise ValueError(msg)
            return float(trigger)
        return float(timestamp)

    def _slack(self) -> float:
        return 0.0 if self.by == "trigger" else self.tolerance_s

    def _best(self, pending: deque[_Pending], new: _Pending) -> _Pending | None:
        """The pending item on the other stream that `new` pairs with, nearest first."""
        best, best_distance = None, float("inf")
        for entry in pending:
            frame, window = (new, entry) if new.frame is not None else (entry, new)
            start = window.key - self._slack()
            if not start <= frame.key <= window.end:
                continue
            distance = _distance(frame.key, window.key, window.end - self._slack())
            if distance < best_distance:
                best, best_distance = entry, distance
        return best

    def _expire_frames(self) -> list[Pair]:
        """Frames no later window can reach: windows arrive in order, so one that starts after
        a frame's time (plus tolerance) means that frame's window was lost."""
        out = []
        while self._frames and self._frames[0].key + self._slack() < self._last_window_key:
            out.append(self._unpaired(self._frames.popleft(), True, "no vibration window"))
        return out

    def _expire_windows(self) -> list[Pair]:
        out = []
        while self._windows and self._windows[0].end < self._last_frame_key:
            out.append(self._unpaired(self._windows.popleft(), False, "no camera frame"))
        return out

    def _push(self, pending: deque[_Pending], entry: _Pending, is_frame: bool) -> list[Pair]:
        pending.append(entry)
        out = []
        while len(pending) > self.max_pending:
            if is_frame:
                self.stats.overflow_frames += 1
            else:
                self.stats.overflow_windows += 1
            out.append(self._unpaired(pending.popleft(), is_frame, "buffer full"))
        return out

    def _pair(self, frame: _Pending, window: _Pending) -> Pair:
        self.stats.paired += 1
        return Pair(frame.frame, window.window, frame.trigger)

    def _unpaired(self, entry: _Pending, is_frame: bool, reason: str) -> Pair:
        if is_frame:
            self.stats.unpaired_frames += 1
        else:
            self.stats.unpaired_windows += 1
        return Pair(entry.frame, entry.window, entry.trigger, reason)


def _distance(t: float, start: float, end: float) -> float:
    """How far `t` lies outside [start, end], or how far from its middle when inside."""
    if t < start:
        return start - t + (end - start)
    if t > end:
        return t - end + (end - start)
    return abs(t - (start + end) / 2)
