"""The source's health as the operator sees it: a camera that drops out shows `reconnecting`;
a hot folder (`console --watch`) inspects the parts written into it and stops when asked."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspect_app.sources import CameraLine
from inspect_app.store import DefectStore
from sensors.camera import CameraGap
from tests.ui.conftest import fake_loader
from ui.view_state import SourceHealth
from ui.widgets.counters import CountersPanel
from ui.worker import ConsoleSettings, LineWorker


def test_a_camera_gap_shows_reconnecting_with_its_counts(
    qtbot: Any, store: DefectStore, db_url: str, tmp_path: Path
) -> None:
    worker = LineWorker(store, fake_loader(), ConsoleSettings(tmp_path, db_url), "line-a")
    camera = CameraLine("rtsp://192.0.2.1/stream")  # never opened: nothing is read here
    worker.source, worker.source_spec, worker.state = camera, "rtsp://192.0.2.1/stream", "running"
    stats = camera.camera.stats
    stats.reconnects, stats.failed_reads, stats.repeated_frames = 2, 5, 7
    stats.gaps.extend(
        [CameraGap(10.0, 12.5, 3, "read timed out"), CameraGap(20.0, None, 1, "could not open")]
    )

    health = worker.health()
    assert health == SourceHealth(
        "reconnecting",
        "rtsp://192.0.2.1/stream",
        reconnects=2,
        gaps=2,
        failed_reads=5,
        repeated_frames=7,
    )
    stats.gaps[-1] = CameraGap(20.0, 21.0, 2, "could not open")
    assert worker.health().state == "running"

    panel = CountersPanel()
    qtbot.addWidget(panel)
    panel.show_health(health)
    assert "reconnecting" in panel.health.text()
    assert "2 reconnects, 2 gaps, 5 failed reads" in panel.health.text()
    assert "7 frozen frames (identical to the one before)" in panel.health.text()
    assert "#f2a900" in panel.health.styleSheet()  # amber


def test_the_console_inspects_a_hot_folder_and_stops_while_it_waits(
    store: DefectStore, db_url: str, tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    settings = ConsoleSettings(tmp_path, db_url, watch=True, snapshots=False)
    worker = LineWorker(store, fake_loader(), settings, "line-a")
    worker.start_source(str(incoming))
    try:
        for stem in ("p1", "p2"):
            cv2.imwrite(str(incoming / f"{stem}.png"), np.full((24, 24, 3), 80, np.uint8))
        deadline = time.monotonic() + 30
        while worker.counters().parts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.counters().parts == 2
    finally:
        worker.stop_source()  # the hot folder waits for a third part: stop must end the wait
        assert worker.pipeline is not None
        worker.pipeline.join(timeout=10)
    assert not worker.pipeline.running
    assert {r.part_id for r in store.inspections(line="line-a")} == {"p1", "p2"}


def test_a_line_that_cannot_inspect_its_parts_shows_a_red_banner_until_it_can(qtbot: Any) -> None:
    """20 parts in a row not inspected (a frozen or covered camera): every one was rejected,
    but the line inspects nothing, and the operator is told so with the latest reason."""
    from ui.view_state import CounterView

    panel = CountersPanel()
    qtbot.addWidget(panel)
    panel.show()
    reason = "rtsp://cam/stream frame 913: image identical, sample for sample, to part x's"
    panel.show_counters(CounterView("line-a", parts=40, faults=19, fault_run=19, last_fault=reason))
    assert panel.blind.isHidden()
    panel.show_counters(CounterView("line-a", parts=41, faults=20, fault_run=20, last_fault=reason))
    assert not panel.blind.isHidden()
    assert panel.blind.text() == (
        f"not inspecting: the last 20 parts could not be inspected (all rejected)\n{reason}"
    )
    panel.show_counters(CounterView("line-a", parts=42, passed=1, faults=20))
    assert panel.blind.isHidden()
