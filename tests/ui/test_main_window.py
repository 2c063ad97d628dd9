"""The console window driven offscreen on a replayed stream, around the label-oracle fake backend.

The real pipeline, store, workers and widgets run; only the model is fake (see conftest), so each
verdict is known and what the window shows can be checked against the defect log exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from inspect_app.from_db import export_corrections
from inspect_app.store import DefectStore, InspectionRecord
from tests.ui.conftest import fake_loader
from ui.main_window import MainWindow
from ui.view_state import PartView
from ui.worker import ConsoleSettings

pytestmark = pytest.mark.timeout(60)

N_PARTS, N_DEFECTIVE = 32, 8
WAIT_MS = 15_000


def make_window(
    qtbot: Any, store: DefectStore, db_url: str, home: Path, source: str, **loader_kw: Any
) -> MainWindow:
    batch = loader_kw.pop("batch", 8)
    settings = ConsoleSettings(
        home=home,
        db_url=db_url,
        batch_size=batch,
        queue_size=2 * batch,
        audit_every=loader_kw.pop("audit_every", None),
    )
    loader = fake_loader(**loader_kw)
    window = MainWindow(
        store, loader, settings, "line-a", ["line-a", "line-b"], source=source, operator=""
    )
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    qtbot.waitUntil(lambda: window.classes != [], timeout=WAIT_MS)
    return window


@pytest.fixture
def window(
    qtbot: Any, store: DefectStore, db_url: str, tmp_path: Path, stream: Path
) -> Iterator[MainWindow]:
    w = make_window(qtbot, store, db_url, tmp_path, str(stream))
    yield w
    w.shutdown()


def run_to_end(qtbot: Any, window: MainWindow, parts: int = N_PARTS) -> None:
    window.start()
    qtbot.waitUntil(
        lambda: window.health_view.state == "ended" and window.counters_view.parts == parts,
        timeout=WAIT_MS,
    )


def test_verdicts_appear_and_counters_match_the_store(
    qtbot: Any, window: MainWindow, store: DefectStore
) -> None:
    shown: list[PartView] = []
    window.line_worker.part_committed.connect(shown.append)
    run_to_end(qtbot, window)
    qtbot.waitUntil(lambda: window.current is not None and window._pending is None, timeout=WAIT_MS)

    c = window.counters_view
    assert c.parts == store.count(line="line-a") == N_PARTS
    assert c.fails == store.count(line="line-a", verdict="FAIL") == N_DEFECTIVE
    assert c.faults == store.count(line="line-a", verdict="FAULT") == 0
    assert c.passed == N_PARTS - N_DEFECTIVE
    assert c.yield_pct == pytest.approx(100.0 * (N_PARTS - N_DEFECTIVE) / N_PARTS)
    assert window.counters.tiles["parts"].value.text() == str(N_PARTS)
    assert window.counters.tiles["fails"].value.text() == str(N_DEFECTIVE)
    assert window.counters.tiles["yield"].value.text() == "75.0 %"

    # Every part the worker sent is a logged part with the same verdict as the log.
    assert shown
    for part in shown:
        assert part.inspection_id is not None
        row = store.inspection(part.inspection_id)
        assert (row.part_id, row.verdict, row.defect_class) == (
            part.part_id,
            part.verdict,
            part.defect_class,
        )
    # The banner shows the part on screen: the newest reject of the last batch, else its newest.
    current = window.current
    assert current is not None
    assert window.banner.word.text() == current.verdict
    assert current.part_id == shown[-1].part_id
    # the spectrum is drawn on its own timer's next tick after the part is shown
    qtbot.waitUntil(lambda: window.spectrum.redraws >= 1, timeout=WAIT_MS)
    # The log's first page caught up with the run.
    qtbot.waitUntil(
        lambda: (
            window.log_panel.last_page is not None and window.log_panel.last_page.total == N_PARTS
        ),
        timeout=WAIT_MS,
    )


def test_a_fail_shows_class_heatmap_and_box(qtbot: Any, window: MainWindow) -> None:
    fails: list[PartView] = []
    window.line_worker.part_committed.connect(
        lambda p: fails.append(p) if p.verdict == "FAIL" else None
    )
    run_to_end(qtbot, window)
    if not fails:
        pytest.skip("no FAIL happened to be the newest part of a committed batch")
    part = fails[-1]
    assert part.box is not None and part.image is not None
    window.on_part(part)
    window.render_pending()
    assert window.banner.word.text() == "FAIL"
    assert part.defect_class is not None
    assert part.defect_class.replace("_", " ").upper() in window.banner.detail.text()
    assert window.part_image.box == part.box
    # The heat-map blob (top-left quarter) is blended into the frame the worker prepared.
    assert part.image.shape[2] == 3


def test_override_lands_in_the_store_and_in_from_db_data(
    qtbot: Any, window: MainWindow, store: DefectStore, stream: Path, tmp_path: Path
) -> None:
    run_to_end(qtbot, window)
    fail_rows = store.inspections(line="line-a", verdict="FAIL", limit=10)
    pass_row = store.inspections(line="line-a", verdict="PASS", limit=1)[0]

    # False alarm on a FAIL, through the dialog as the operator does it.
    target = fail_rows[0]
    window.override_row(target)
    dialog = window.override_dialog
    dialog.radios["false_alarm"].setChecked(True)
    dialog.operator.setText("A. Jones")
    dialog.note.setPlainText("scratch is a reflection")
    dialog._accept()
    qtbot.waitUntil(
        lambda: store.inspection(target.id).operator_action is not None, timeout=WAIT_MS
    )
    saved = store.inspection(target.id)
    assert (saved.operator_action, saved.operator, saved.effective_verdict) == (
        "false_alarm",
        "A. Jones",
        "PASS",
    )
    assert saved.operator_note == "scratch is a reflection"

    # Relabel a missed defect (a PASS) to a class.
    window.override_row(pass_row)
    dialog = window.override_dialog
    assert dialog.radios["relabel"].isChecked() and not dialog.radios["false_alarm"].isEnabled()
    dialog.class_box.setCurrentText("crack")
    dialog.operator.setText("A. Jones")
    dialog._accept()
    qtbot.waitUntil(
        lambda: store.inspection(pass_row.id).operator_action is not None, timeout=WAIT_MS
    )
    assert store.inspection(pass_row.id).effective_class == "crack"

    # A passed part checked and found good: confirmed, it stays a PASS, now with a witness.
    checked = store.inspections(line="line-a", verdict="PASS", limit=2)[1]
    window.override_row(checked)
    dialog = window.override_dialog
    assert dialog.radios["confirm"].isEnabled()
    assert dialog.radios["confirm"].text() == "Confirm good (checked: no defect)"
    dialog.radios["confirm"].setChecked(True)
    dialog.operator.setText("A. Jones")
    dialog._accept()
    qtbot.waitUntil(
        lambda: store.inspection(checked.id).operator_action is not None, timeout=WAIT_MS
    )
    assert store.inspection(checked.id).effective_verdict == "PASS"

    # Both corrections become adaptation data with the operator's labels.
    result = export_corrections(
        store, "line-a", tmp_path / "from-db", sources=[stream], show_progress=False
    )
    labels = {p.part_id: p.label for p in result.parts}
    assert labels == {target.part_id: "ok", pass_row.part_id: "crack", checked.part_id: "ok"}
    assert all(p.image and p.vibration for p in result.parts)
    from sensors.dataset import LineDataset

    ds = LineDataset.open(tmp_path / "from-db")
    assert sorted(ds.labels) == ["crack", "ok", "ok"]
    assert ds[0].frame is not None and ds[0].vibration is not None


def test_an_override_the_store_refuses_is_shown_not_lost(
    qtbot: Any, window: MainWindow, store: DefectStore
) -> None:
    run_to_end(qtbot, window)
    pass_row = store.inspections(line="line-a", verdict="PASS", limit=1)[0]
    from ui.view_state import OverrideRequest

    window.request_override.emit(OverrideRequest(pass_row.id, "false_alarm", "B. Smith"))
    qtbot.waitUntil(
        lambda: any("override not saved" in m for m in window.messages), timeout=WAIT_MS
    )
    assert store.inspection(pass_row.id).operator_action is None


def test_filters_and_paging(qtbot: Any, window: MainWindow, store: DefectStore) -> None:
    run_to_end(qtbot, window)
    old = datetime.now(timezone.utc) - timedelta(days=2)
    store.add_inspections([InspectionRecord("line-a", "v1", "old-part", old, "FAIL", "crack", 0.8)])
    panel = window.log_panel

    def shown_total() -> int | None:
        page = panel.last_page
        return None if page is None or page.query.serial != panel.serial else page.total

    panel.refresh()
    qtbot.waitUntil(lambda: shown_total() == N_PARTS + 1, timeout=WAIT_MS)

    panel.verdict_box.setCurrentText("FAIL")
    qtbot.waitUntil(lambda: shown_total() == N_DEFECTIVE + 1, timeout=WAIT_MS)
    assert {r.verdict for r in panel.model.rows} == {"FAIL"}

    panel.class_box.setCurrentText("crack")
    expected = store.count(line="line-a", verdict="FAIL", defect_class="crack")
    qtbot.waitUntil(lambda: shown_total() == expected, timeout=WAIT_MS)
    assert {r.defect_class for r in panel.model.rows} == {"crack"}

    panel.time_box.setCurrentText("last 24 h")
    qtbot.waitUntil(lambda: shown_total() == expected - 1, timeout=WAIT_MS)
    assert "old-part" not in {r.part_id for r in panel.model.rows}

    panel.verdict_box.setCurrentText("all")
    panel.class_box.setCurrentText("all")
    panel.time_box.setCurrentText("any time")
    panel.page_size = 10
    panel.first_page()
    qtbot.waitUntil(
        lambda: shown_total() == N_PARTS + 1 and len(panel.model.rows) == 10, timeout=WAIT_MS
    )
    first = [r.id for r in panel.model.rows]
    panel.next_button.click()
    qtbot.waitUntil(
        lambda: panel.last_page is not None and panel.last_page.query.page == 1, timeout=WAIT_MS
    )
    second = [r.id for r in panel.model.rows]
    assert len(second) == 10 and not set(first) & set(second)
    assert panel.pager.text().startswith("page 2 / 4")

    # the passed parts a serve --audit-every picked, not yet checked
    now = datetime.now(timezone.utc)
    store.add_inspections(
        [InspectionRecord("line-a", "v1", "audit-1", now, "PASS", snapshot_path="a1.jpg")]
    )
    panel.verdict_box.setCurrentText("PASS to check")
    qtbot.waitUntil(lambda: shown_total() == 1, timeout=WAIT_MS)
    assert [r.part_id for r in panel.model.rows] == ["audit-1"]
    assert panel.model.cells[0][-1] == "to check"


def test_a_line_switch_takes_effect_on_the_next_part(
    qtbot: Any, store: DefectStore, db_url: str, tmp_path: Path, stream: Path
) -> None:
    window = make_window(
        qtbot,
        store,
        db_url,
        tmp_path,
        str(stream),
        versions={"line-b": "v9"},
        # slowed so the switch lands mid-stream even on a busy machine: the 32 parts take about
        # 3 s, and the switch comes after the first two are shown
        delay_s=0.2,
        batch=2,
    )
    try:
        window.start()
        qtbot.waitUntil(lambda: window.counters_view.parts >= 2, timeout=WAIT_MS)
        window.line_box.setCurrentText("line-b")
        window.switch_line("line-b")
        qtbot.waitUntil(lambda: window.line == "line-b", timeout=WAIT_MS)
        qtbot.waitUntil(lambda: window.health_view.state == "ended", timeout=WAIT_MS)
        qtbot.waitUntil(
            lambda: window._pending is None and window.current is not None, timeout=WAIT_MS
        )
        # the counters are refreshed on a timer: the last parts' count may come after "ended"
        qtbot.waitUntil(lambda: window.counters_view.parts == N_PARTS, timeout=WAIT_MS)
    finally:
        window.shutdown()
    a = store.inspections(line="line-a", limit=100)
    b = store.inspections(line="line-b", limit=100)
    assert a and b, "both lines inspected parts"
    assert {r.model_version for r in b} == {"v9"}
    # Every part read after the switch went to line-b; none was inspected twice or lost.
    assert max(r.timestamp for r in a) <= min(r.timestamp for r in b)
    ids = [r.part_id for r in a + b]
    assert len(ids) == len(set(ids)) == N_PARTS
    assert window.current is not None and window.current.line == "line-b"
    assert window.counters_view.parts == N_PARTS
    assert window.log_panel.line == "line-b"
    # each line's snapshots went into its own folder (its own retention)
    for line, rows in (("line-a", a), ("line-b", b)):
        paths = {Path(r.snapshot_path).parent.name for r in rows if r.snapshot_path}
        assert paths <= {line}
    assert any(r.snapshot_path for r in a + b)


def test_a_newly_activated_version_is_announced_and_loaded_when_the_line_is_chosen_again(
    qtbot: Any, store: DefectStore, db_url: str, tmp_path: Path, stream: Path
) -> None:
    """`inspect-app lines --activate v2` while the console inspects with v1: the window says
    so (once), keeps inspecting with v1, and choosing the line again loads v2."""
    from ui.worker import LineRuntime

    root = tmp_path / "lines" / "line-a"
    for version in ("v1", "v2"):
        (root / version).mkdir(parents=True)
    (root / "ACTIVE").write_text("v1\n")
    base = fake_loader()

    def on_disk(line: str) -> LineRuntime:  # the fake model, at the version ACTIVE names
        runtime = base(line)
        version = (tmp_path / "lines" / line / "ACTIVE").read_text().strip()
        runtime.loaded.version = version
        return runtime

    settings = ConsoleSettings(home=tmp_path, db_url=db_url, active_check_s=0.1)
    window = MainWindow(store, on_disk, settings, "line-a", ["line-a"], source=str(stream))
    qtbot.addWidget(window)
    try:
        qtbot.waitUntil(lambda: window.model_version == "v1", timeout=WAIT_MS)
        (root / "ACTIVE").write_text("v2\n")
        said = "line line-a: v2 is now its active version (this console inspects with v1)"
        qtbot.waitUntil(lambda: any(m.startswith(said) for m in window.messages), timeout=WAIT_MS)
        qtbot.wait(500)  # five more checks: said once
        assert sum(m.startswith(said) for m in window.messages) == 1
        assert window.model_version == "v1" and base.loaded == ["line-a"]
        window.switch_line("line-a")
        qtbot.waitUntil(lambda: window.model_version == "v2", timeout=WAIT_MS)
        assert base.loaded == ["line-a", "line-a"]
        window.switch_line("line-a")  # nothing newer now: not loaded again
        qtbot.wait(300)
        assert base.loaded == ["line-a", "line-a"]
        run_to_end(qtbot, window)
    finally:
        window.shutdown()
    assert {r.model_version for r in store.inspections(line="line-a", limit=100)} == {"v2"}


def test_a_line_that_cannot_load_leaves_the_running_line_alone(
    qtbot: Any, window: MainWindow
) -> None:
    window.switch_line("no-such-line")
    qtbot.waitUntil(
        lambda: any("could not load line" in m for m in window.messages), timeout=WAIT_MS
    )
    assert window.line == "line-a"
    run_to_end(qtbot, window)


def test_stop_then_start_continues_without_repeating_parts(
    qtbot: Any, store: DefectStore, db_url: str, tmp_path: Path, stream: Path
) -> None:
    # The source is slowed so that a stop lands mid-stream even on a busy machine: the 32 parts
    # take about 5 s to read, and the stop comes after the first two are shown.
    window = make_window(qtbot, store, db_url, tmp_path, str(stream), delay_s=0.15, batch=2)
    try:
        window.start()
        qtbot.waitUntil(lambda: window.counters_view.parts >= 2, timeout=WAIT_MS)
        window.stop()
        qtbot.waitUntil(lambda: window.health_view.state == "stopped", timeout=WAIT_MS)
        stopped_at = store.count()
        assert stopped_at < N_PARTS
        assert window.start_button.isEnabled()
        window.start()
        qtbot.waitUntil(lambda: window.health_view.state == "ended", timeout=WAIT_MS)
    finally:
        window.shutdown()
    ids = [r.part_id for r in store.inspections(limit=100)]
    assert len(ids) == len(set(ids)) == N_PARTS


def test_click_opens_the_snapshot(qtbot: Any, window: MainWindow, store: DefectStore) -> None:
    run_to_end(qtbot, window)
    panel = window.log_panel
    panel.verdict_box.setCurrentText("FAIL")
    qtbot.waitUntil(
        lambda: (
            panel.last_page is not None
            and panel.last_page.query.verdict == "FAIL"
            and len(panel.model.rows) > 0
        ),
        timeout=WAIT_MS,
    )
    index = panel.model.index(0, 1)
    panel.table.clicked.emit(index)
    dialog = window.snapshot_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=WAIT_MS)
    row = panel.model.rows[0]
    assert dialog.row is not None and dialog.row.id == row.id
    assert row.snapshot_path is not None and Path(row.snapshot_path).is_file()
    assert dialog.image.image is not None
    assert row.part_id in dialog.info.text()


def test_export_report_uses_the_report_code(qtbot: Any, window: MainWindow, tmp_path: Path) -> None:
    run_to_end(qtbot, window)
    out = tmp_path / "shift.html"
    window.export_report(str(out))
    qtbot.waitUntil(lambda: any("report of" in m for m in window.messages), timeout=WAIT_MS)
    assert out.is_file()
    assert "line-a" in out.read_text(encoding="utf-8")
    window.export_report(str(tmp_path / "shift.docx"))
    assert "name it .html, .pdf or .csv" in window.messages[-1]


def test_a_region_picked_on_the_frame_is_the_roi_to_teach_with(
    qtbot: Any, window: MainWindow
) -> None:
    from PyQt6.QtCore import QPoint, Qt
    from PyQt6.QtWidgets import QApplication

    run_to_end(qtbot, window)
    qtbot.waitUntil(lambda: window.current is not None and window._pending is None, timeout=WAIT_MS)
    current = window.current
    assert current is not None and current.geometry is not None
    window.region_button.click()  # picking on
    assert window.part_image.picking
    view = window.part_image
    target = view.image_rect()

    def at(fx: float, fy: float) -> QPoint:
        return QPoint(
            round(target.x() + fx * target.width()), round(target.y() + fy * target.height())
        )

    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=at(0.25, 0.125))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=at(0.75, 0.625))
    region = window.picked_region
    assert region is not None
    w, h = current.geometry.width, current.geometry.height
    assert region == pytest.approx((w / 4, h / 8, w / 2, h / 2), abs=3)
    roi = ",".join(str(v) for v in region)
    clipboard = QApplication.clipboard()
    assert clipboard is not None and clipboard.text() == roi
    assert f"--line line-a --data DIR --roi {roi}" in window.messages[-1]

    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=at(0.5, 0.5))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=at(0.5, 0.5))
    assert "region too small" in window.messages[-1] and window.picked_region == region
    window.region_button.click()  # picking off: drags do nothing
    assert not window.part_image.picking
    # the loaded line's adapt advised no region (nothing around its parts stays put)
    assert window.advised_regions == {}
    # a line whose adapt found a fixture around the part: picking starts from its advice
    window.on_region_advised("line-a", [42, 37, 238, 241])
    window.region_button.click()
    assert "adapt advised --roi 42,37,238,241" in window.messages[-1]
    window.region_button.click()
    window.on_region_advised("line-a", None)  # a new version without it
    window.region_button.click()
    assert "adapt advised" not in window.messages[-1]
    window.region_button.click()


def test_a_new_version_of_the_running_line_takes_over_without_reopening_the_source(
    qtbot: Any,
    store: DefectStore,
    db_url: str,
    tmp_path: Path,
    stream: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Choosing the running line again after `inspect-app lines --activate v2`: v2 decides the
    parts prepared from then on, in the same pipeline; the source is opened once (a camera
    would lose no frame), and every part is logged once, v1's first, then v2's."""
    import ui.worker as worker_module

    opened: list[str] = []
    real_open = worker_module.open_source

    def counting_open(spec: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(spec)
        return real_open(spec, *args, **kwargs)

    monkeypatch.setattr(worker_module, "open_source", counting_open)
    window, root = running_versions(qtbot, store, db_url, tmp_path, str(stream))
    try:
        qtbot.waitUntil(lambda: window.counters_view.parts >= 8, timeout=WAIT_MS)
        (root / "ACTIVE").write_text("v2\n")
        window.switch_line("line-a")
        qtbot.waitUntil(lambda: window.model_version == "v2", timeout=WAIT_MS)
        qtbot.waitUntil(
            lambda: window.health_view.state == "ended" and window.counters_view.parts == N_PARTS,
            timeout=WAIT_MS,
        )
    finally:
        window.shutdown()
    assert opened == [str(stream)]
    rows = sorted(store.inspections(line="line-a", limit=100), key=lambda r: r.id)
    assert len(rows) == N_PARTS == len({r.part_id for r in rows})
    versions = [r.model_version for r in rows]
    switch = versions.index("v2")
    assert switch >= 8 and versions == ["v1"] * switch + ["v2"] * (N_PARTS - switch)


def test_a_new_version_the_camera_cannot_feed_is_refused_and_the_line_goes_on(
    qtbot: Any, store: DefectStore, db_url: str, tmp_path: Path
) -> None:
    """v2 is taught on camera and vibration, the console runs a camera without --vibration:
    choosing the line again says why v2 is not loaded, and v1 keeps inspecting."""
    import cv2
    import numpy as np

    from tests.ui.conftest import FakeCard

    video = tmp_path / "camera.avi"
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]
    writer = cv2.VideoWriter(str(video), fourcc, 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(60):  # a live camera's noise: frames that repeat are a frozen feed (FAULT)
        writer.write(rng.integers(110, 130, (48, 64, 3), dtype=np.uint8))
    writer.release()
    window, root = running_versions(
        qtbot, store, db_url, tmp_path, str(video), FakeCard(modalities=("image", "vibration"))
    )
    try:
        qtbot.waitUntil(lambda: window.counters_view.parts >= 4, timeout=WAIT_MS)
        (root / "ACTIVE").write_text("v2\n")
        window.switch_line("line-a")
        said = "v2 not loaded: line line-a is taught on image and vibration"
        qtbot.waitUntil(lambda: any(m.startswith(said) for m in window.messages), timeout=WAIT_MS)
        assert window.model_version == "v1"
        qtbot.waitUntil(lambda: window.health_view.state == "ended", timeout=WAIT_MS)
    finally:
        window.shutdown()
    rows = store.inspections(line="line-a", limit=100)
    assert len(rows) == 60 and {r.model_version for r in rows} == {"v1"}


def running_versions(
    qtbot: Any,
    store: DefectStore,
    db_url: str,
    home: Path,
    source: str,
    v2_card: Any = None,
    delay_s: float = 0.2,
) -> tuple[MainWindow, Path]:
    """A console on line-a whose ACTIVE file (in HOME, returned) picks the version the fake
    loader gives, v1 at first; `v2_card` replaces v2's card. Started on `source`, each batch
    taking `delay_s` (slow enough that a switch lands while the parts are still coming)."""
    from ui.worker import LineRuntime

    root = home / "lines" / "line-a"
    for version in ("v1", "v2"):
        (root / version).mkdir(parents=True)
    (root / "ACTIVE").write_text("v1\n")
    base = fake_loader(delay_s=delay_s)

    def on_disk(line: str) -> LineRuntime:
        runtime = base(line)
        runtime.loaded.version = (root / "ACTIVE").read_text().strip()
        if runtime.loaded.version == "v2" and v2_card is not None:
            runtime.loaded.card = v2_card
        return runtime

    settings = ConsoleSettings(home=home, db_url=db_url, batch_size=4, queue_size=8)
    window = MainWindow(store, on_disk, settings, "line-a", ["line-a"], source=source)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.model_version == "v1", timeout=WAIT_MS)
    window.start()
    return window, root


def test_drifting_scores_raise_a_banner_under_the_counters(
    qtbot: Any, store: DefectStore, db_url: str, tmp_path: Path, stream: Path
) -> None:
    """The console watches the line's defect scores as `serve` does: its reference is the
    version's first parts in the log (here 40 parts that all scored 0.05); this run's parts
    all score higher, so a banner says so, with the share rejected then and now."""
    from datetime import datetime, timezone

    from inspect_app.drift import DriftSettings
    from inspect_app.store import InspectionRecord

    now = datetime.now(timezone.utc)
    store.add_inspections(
        [
            InspectionRecord("line-a", "v1", f"old-{i}", now, "PASS", defect_score=0.05)
            for i in range(40)
        ]
    )
    small = DriftSettings(reference_parts=40, min_reference=20, window=16, check_every=4)
    settings = ConsoleSettings(home=tmp_path, db_url=db_url, drift=small)
    window = MainWindow(store, fake_loader(), settings, "line-a", ["line-a"], source=str(stream))
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.classes != [], timeout=WAIT_MS)
        assert window.counters.drift.isHidden()
        run_to_end(qtbot, window)
        qtbot.waitUntil(lambda: not window.counters.drift.isHidden(), timeout=WAIT_MS)
        text = window.counters.drift.text()
        assert "scores drifting higher than v1's first parts: rejected 0 % then" in text
        assert any(
            "parts score higher than when this version started" in m for m in window.messages
        )
    finally:
        window.shutdown()


def test_a_passed_part_picked_for_a_check_says_so_in_the_log() -> None:
    """`serve --audit-every` keeps the snapshot of the passed parts it picks; the log's
    operator column says "to check" until someone confirms or relabels them."""
    from dataclasses import replace
    from datetime import datetime, timezone

    from inspect_app.store import InspectionRow
    from ui.widgets.defect_log import _cell

    row = InspectionRow(
        id=1, line="line-a", model_version="v1", part_id="p1",
        timestamp=datetime(2026, 12, 7, tzinfo=timezone.utc), verdict="PASS", defect_class=None,
        defect_score=0.1, anomaly_score=0.2, class_probs={}, fault_reason=None, latency_ms=5.0,
        box=None, snapshot_path="snapshots/line-a/p1-PASS.jpg", label=None,
        effective_verdict="PASS", effective_class=None, operator_action=None, operator=None,
        operator_note=None,
    )  # fmt: skip
    assert _cell(row, "operator") == "to check"
    assert _cell(replace(row, snapshot_path=None), "operator") == ""
    checked = replace(row, operator_action="confirm", operator="A. Jones")
    assert _cell(checked, "operator") == "confirm (A. Jones)"
    assert _cell(replace(row, verdict="FAIL", effective_verdict="FAIL"), "operator") == ""


def test_the_console_running_a_line_picks_passed_parts_for_a_check(
    qtbot: Any, store: DefectStore, db_url: str, tmp_path: Path, stream: Path
) -> None:
    """`console --audit-every 1`: every passed part is picked, logged with its snapshot and
    listed under 'PASS to check'."""
    window = make_window(qtbot, store, db_url, tmp_path, str(stream), audit_every=1)
    try:
        run_to_end(qtbot, window)
        passed = store.inspections(line="line-a", verdict="PASS", limit=100)
        assert passed and all(r.snapshot_path for r in passed)
        assert store.count(line="line-a", to_check=True) == len(passed)
    finally:
        window.shutdown()
