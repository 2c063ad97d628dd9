"""Pairing frames with vibration windows: by trigger, by timestamp, and nothing lost silently."""

from __future__ import annotations

import numpy as np
import pytest

from sensors.camera import Frame
from sensors.sample import VibrationWindow
from sensors.sync import Pairer
from sensors.vibration import TimedWindow


def frame(t: float, index: int = 0) -> Frame:
    return Frame(np.zeros((2, 2, 3), dtype=np.uint8), t, index)


def window(start: float, seconds: float = 0.5) -> TimedWindow:
    return TimedWindow(start, VibrationWindow(np.zeros(round(seconds * 100), np.float32), 100.0))


def test_trigger_pairs_in_any_arrival_order_and_reports_lost_ones() -> None:
    pairer = Pairer(by="trigger")
    out = pairer.add_frame(frame(0.0), trigger=1)
    out += pairer.add_frame(frame(1.0), trigger=2)
    out += pairer.add_window(window(0.0), trigger=2)  # part 1's window never came
    out += pairer.add_window(window(1.0), trigger=3)  # nor part 3's frame: stream ends
    out += pairer.flush()
    complete = [p for p in out if p.complete]
    assert [p.trigger for p in complete] == [2]
    lost = sorted((p.trigger, p.reason) for p in out if not p.complete)
    assert lost == [(1, "no vibration window"), (3, "stream ended")]
    assert pairer.stats.paired == 1
    assert pairer.stats.unpaired_frames == 1 and pairer.stats.unpaired_windows == 1


def test_timestamp_pairs_frame_with_the_window_that_holds_it() -> None:
    pairer = Pairer(by="timestamp", tolerance_s=0.1)
    out = pairer.add_window(window(10.0))
    out += pairer.add_window(window(11.0))
    out += pairer.add_frame(frame(10.55, 0))  # just past the first window, within tolerance
    out += pairer.add_frame(frame(11.2, 1))
    pairs = [(p.frame, p.vibration) for p in out]
    assert [(f.index, w.start_s) for f, w in pairs if f and w] == [(0, 10.0), (1, 11.0)]
    assert pairer.pending == (0, 0)


def test_a_window_nobody_photographed_expires_once_frames_move_on() -> None:
    pairer = Pairer(by="timestamp", tolerance_s=0.1)
    out = pairer.add_window(window(0.0))
    out += pairer.add_frame(frame(3.0))
    assert len(out) == 1 and out[0].frame is None and out[0].reason == "no camera frame"
    assert pairer.pending == (1, 0)


def test_buffers_are_bounded_and_overflow_is_counted() -> None:
    pairer = Pairer(by="trigger", max_pending=4)
    out = []
    for k in range(10):  # the vibration input is dead: frames pile up
        out += pairer.add_frame(frame(float(k), k), trigger=k)
    assert pairer.pending == (4, 0)
    assert len(out) == 6 and all(p.reason == "buffer full" for p in out)
    assert pairer.stats.overflow_frames == 6 and pairer.stats.unpaired_frames == 6
    assert len(out) + len(pairer.flush()) == 10  # every frame accounted for


def test_trigger_mode_needs_triggers() -> None:
    with pytest.raises(ValueError, match="trigger count"):
        Pairer(by="trigger").add_frame(frame(0.0))
    with pytest.raises(ValueError, match="max_pending"):
        Pairer(max_pending=0)
