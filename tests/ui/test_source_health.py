"""The source's health as the operator sees it: a camera that drops out shows `reconnecting`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    stats.reconnects, stats.failed_reads = 2, 5
    stats.gaps.extend(
        [CameraGap(10.0, 12.5, 3, "read timed out"), CameraGap(20.0, None, 1, "could not open")]
    )

    health = worker.health()
    assert health == SourceHealth(
        "reconnecting", "rtsp://192.0.2.1/stream", reconnects=2, gaps=2, failed_reads=5
    )
    stats.gaps[-1] = CameraGap(20.0, 21.0, 2, "could not open")
    assert worker.health().state == "running"

    panel = CountersPanel()
    qtbot.addWidget(panel)
    panel.show_health(health)
    assert "reconnecting" in panel.health.text()
    assert "2 reconnects, 2 gaps, 5 failed reads" in panel.health.text()
    assert "#f2a900" in panel.health.styleSheet()  # amber
