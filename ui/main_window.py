"""The operator console's main window: live part, verdict, spectrum, counters, defect log.

Everything slow runs on the two worker threads (`ui.worker`); the window only sends requests as
signals and draws the answers. New parts are drawn from a 50 ms timer (the newest one wins), so a
fast line cannot flood the event loop; every part still reaches the counters and the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QMetaObject, Qt, QThread, QTimer, pyqtBoundSignal, pyqtSignal
from PyQt6.QtGui import QCloseEvent
from PyQt6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from inspect_app.drift import DriftState
from inspect_app.store import DefectStore, InspectionRow
from ui.view_state import (
    MIN_REGION_PX,
    CounterView,
    DisplayRate,
    LogPage,
    OverrideOutcome,
    PartView,
    SourceHealth,
    region_in_camera,
)
from ui.widgets.counters import CountersPanel
from ui.widgets.defect_log import DefectLogPanel
from ui.widgets.override_dialog import OverrideDialog
from ui.widgets.part_view import PartImage
from ui.widgets.snapshot_view import SnapshotDialog, row_summary
from ui.widgets.spectrum_plot import SpectrumPlot
from ui.widgets.verdict_banner import VerdictBanner
from ui.worker import ConsoleSettings, LineLoader, LineWorker, LogWorker

RENDER_MS = 50  # newest part drawn at most this often
LOG_REFRESH_MS = 1000  # the log's first page follows new parts at most this often
REPORT_FORMATS = {".html": "html", ".htm": "html", ".pdf": "pdf", ".csv": "csv"}


def queued(signal: pyqtBoundSignal, slot: Callable[..., Any]) -> None:
    """Connect across threads: the slot runs on its receiver's thread, never on the sender's."""
    signal.connect(slot, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]


class MainWindow(QMainWindow):
    """The console. Build it with the store, a line loader and the settings, then `show()`."""

    request_start = pyqtSignal(str)
    request_stop = pyqtSignal()
    request_switch = pyqtSignal(str)
    request_override = pyqtSignal(object)
    request_snapshot = pyqtSignal(object)
    request_report = pyqtSignal(str, str, object)

    def __init__(
        self,
        store: DefectStore,
        loader: LineLoader,
        settings: ConsoleSettings,
        line: str,
        lines: list[str],
        source: str = "",
        snapshot_dirs: tuple[Path, ...] = (),
        operator: str = "",
    ) -> None:
        super().__init__()
        self.setWindowTitle(f"inspect-app console — line {line}")
        self.line = line
        self.model_version = ""
        self.classes: list[str] = []
        self.operator = operator
        self.current: PartView | None = None
        self._pending: PartView | None = None
        self.display = DisplayRate()
        self.counters_view = CounterView(line)
        self.health_view = SourceHealth("idle")
        self.parts_committed = 0
        self.messages: list[str] = []
        self._log_dirty = False

        self._build(lines, line, source)
        self._start_workers(store, loader, settings, line, snapshot_dirs)

        self.render_timer = QTimer(self)
        self.render_timer.setInterval(RENDER_MS)
        self.render_timer.timeout.connect(self.render_pending)
        self.render_timer.start()
        self.log_timer = QTimer(self)
        self.log_timer.setInterval(LOG_REFRESH_MS)
        self.log_timer.timeout.connect(self._refresh_log_if_new)
        self.log_timer.start()

    # -- layout ------------------------------------------------------------------------------

    def _build(self, lines: list[str], line: str, source: str) -> None:
        self.line_box = QComboBox()
        self.line_box.addItems(sorted(set(lines) | {line}))
        self.line_box.setCurrentText(line)
        self.line_box.activated.connect(lambda _: self.switch_line(self.line_box.currentText()))
        self.source_edit = QLineEdit(source)
        self.source_edit.setPlaceholderText("dataset folder, video file, camera index or RTSP URL")
        self.start_button = QPushButton("▶ Start")
        self.stop_button = QPushButton("■ Stop")
        self.override_button = QPushButton("Override this part…")
        self.report_button = QPushButton("Export report…")
        self.region_button = QPushButton("Pick region…")
        self.region_button.setCheckable(True)
        self.region_button.setToolTip(
            "drag a rectangle around the part on the frame: its --roi for inspect-app adapt"
        )
        self.region_button.toggled.connect(self.pick_region)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.override_button.clicked.connect(self.override_current)
        self.report_button.clicked.connect(self._ask_report)
        self.stop_button.setEnabled(False)
        self.override_button.setEnabled(False)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("line"))
        bar.addWidget(self.line_box)
        bar.addWidget(QLabel("source"))
        bar.addWidget(self.source_edit, 1)
        for button in (self.start_button, self.stop_button, self.override_button):
            bar.addWidget(button)
        bar.addWidget(self.report_button)
        bar.addWidget(self.region_button)
        for w in (self.line_box, self.source_edit, self.start_button, self.stop_button,
                  self.override_button, self.report_button, self.region_button):  # fmt: skip
            font = w.font()
            font.setPointSize(13)
            w.setFont(font)

        self.banner = VerdictBanner()
        self.part_image = PartImage()
        self.part_image.region_picked.connect(self.on_region_picked)
        self.picked_region: tuple[int, int, int, int] | None = None
        # per line, the region its adapt advised to crop to (a fixture around the part)
        self.advised_regions: dict[str, list[int]] = {}
        self.spectrum = SpectrumPlot()
        self.counters = CountersPanel()
        self.log_panel = DefectLogPanel()

        right = QVBoxLayout()
        right.addWidget(self.counters)
        right.addWidget(self.spectrum, 1)
        right_widget = QWidget()
        right_widget.setLayout(right)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.part_image)
        top.addWidget(right_widget)
        top.setStretchFactor(0, 1)
        top.setStretchFactor(1, 1)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(top)
        body.addWidget(self.log_panel)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 2)
        body.setSizes([600, 400])  # the log keeps room for a dozen rows

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(bar)
        layout.addWidget(self.banner)
        layout.addWidget(body, 1)
        self.setCentralWidget(central)
        self.snapshot_dialog = SnapshotDialog(self)
        self.snapshot_dialog.override_requested.connect(self.override_row)

    def _start_workers(
        self,
        store: DefectStore,
        loader: LineLoader,
        settings: ConsoleSettings,
        line: str,
        snapshot_dirs: tuple[Path, ...],
    ) -> None:
        self.line_thread = QThread(self)
        self.line_thread.setObjectName("console-line")
        self.line_worker = LineWorker(store, loader, settings, line)
        self.line_worker.moveToThread(self.line_thread)
        self.line_thread.started.connect(self.line_worker.setup)
        queued(self.request_start, self.line_worker.start_source)
        queued(self.request_stop, self.line_worker.stop_source)
        queued(self.request_switch, self.line_worker.switch_line)
        queued(self.line_worker.part_committed, self.on_part)
        queued(self.line_worker.parts_committed, self.on_parts_committed)
        queued(self.line_worker.counters_changed, self.on_counters)
        queued(self.line_worker.health_changed, self.on_health)
        queued(self.line_worker.line_changed, self.on_line_changed)
        queued(self.line_worker.region_advised, self.on_region_advised)
        queued(self.line_worker.failed, self.show_message)
        queued(self.line_worker.newer_version, self.on_newer_version)
        queued(self.line_worker.drift_changed, self.on_drift)

        self.log_thread = QThread(self)
        self.log_thread.setObjectName("console-log")
        self.log_worker = LogWorker(store, snapshot_dirs)
        self.log_worker.moveToThread(self.log_thread)
        self.log_thread.started.connect(self.log_worker.setup)
        queued(self.log_panel.page_requested, self.log_worker.query)
        queued(self.request_override, self.log_worker.apply_override)
        queued(self.request_snapshot, self.log_worker.load_snapshot)
        queued(self.request_report, self.log_worker.export_report)
        queued(self.log_worker.page_ready, self.on_page)
        queued(self.log_worker.override_done, self.on_override_done)
        queued(self.log_worker.snapshot_ready, self.on_snapshot)
        queued(self.log_worker.report_done, self.show_message)
        queued(self.log_worker.failed, self.show_message)
        self.log_panel.row_clicked.connect(self.request_snapshot.emit)

        self.log_thread.start()
        self.line_thread.start()

    # -- operator actions --------------------------------------------------------------------

    def start(self) -> None:
        self.request_start.emit(self.source_edit.text())

    def stop(self) -> None:
        self.request_stop.emit()

    def switch_line(self, line: str) -> None:
        if not line:
            return
        if line != self.line:
            self.show_message(f"loading line {line}; the next part is inspected with it")
        # the same line again is loaded anew only if another version was made active since
        self.request_switch.emit(line)

    def pick_region(self, on: bool) -> None:
        """Region picking on or off: a rectangle dragged on the frame becomes an `--roi`."""
        self.part_image.set_picking(on)
        if on:
            advised = self.advised_regions.get(self.line)
            hint = (
                f"; adapt advised --roi {','.join(map(str, advised))}, the region a fixture "
                "around the part closes in"
                if advised
                else ""
            )
            self.show_message(
                "drag a rectangle around the part on the frame (Stop the line to pick on a "
                f"still frame); its --roi for inspect-app adapt is shown here and copied{hint}"
            )

    def on_region_advised(self, line: str, region: list[int] | None) -> None:
        """The region `line`'s adapt advised to crop to (`inspect_app.lines.enclosed_roi`)."""
        if region:
            self.advised_regions[line] = list(region)
        else:
            self.advised_regions.pop(line, None)

    def on_region_picked(self, fractions: tuple[float, float, float, float]) -> None:
        geometry = None if self.current is None else self.current.geometry
        if geometry is None:
            self.show_message("no camera frame on screen to pick a region on yet")
            return
        region = region_in_camera(fractions, geometry)
        if region is None:
            self.show_message(f"region too small: drag at least {MIN_REGION_PX} pixels each way")
            return
        self.picked_region = region
        roi = ",".join(str(v) for v in region)
        clipboard = QApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(roi)
        within = " (within the line's own region)" if geometry.x0 or geometry.y0 else ""
        self.show_message(
            f"region {roi} of the camera's frame{within}, copied: teach with inspect-app adapt "
            f"--line {self.line} --data DIR --roi {roi}"
        )

    def override_current(self) -> None:
        part = self.current
        if part is None or part.inspection_id is None:
            self.show_message("no logged part on screen to override yet")
            return
        self._open_override(
            part.inspection_id, part.part_id, part.verdict, part.defect_class, part.line
        )

    def override_row(self, row: InspectionRow) -> None:
        self._open_override(row.id, row.part_id, row.verdict, row.defect_class, row.line)

    def _open_override(
        self, inspection_id: int, part_id: str, verdict: str, defect_class: str | None, line: str
    ) -> None:
        classes = self.classes if line == self.line else []
        dialog = OverrideDialog(
            inspection_id, part_id, verdict, defect_class, classes, self.operator, self
        )
        dialog.setModal(True)
        dialog.accepted.connect(lambda: self.submit_override(dialog))
        dialog.open()  # not exec(): the line keeps drawing while the operator types
        self.override_dialog = dialog

    def submit_override(self, dialog: OverrideDialog) -> None:
        req = dialog.request()
        self.operator = req.operator
        self.request_override.emit(req)

    def export_report(self, out: str) -> None:
        """Write a report of the current line to `out` (format from the suffix) in the worker."""
        fmt = REPORT_FORMATS.get(Path(out).suffix.lower())
        if fmt is None:
            self.show_message(f"report {out}: name it .html, .pdf or .csv")
            return
        self.show_message(f"writing {fmt.upper()} report {out} …")
        self.request_report.emit(fmt, out, self.line)

    def _ask_report(self) -> None:
        out, _ = QFileDialog.getSaveFileName(
            self,
            "Export report",
            f"report-{self.line}.html",
            "HTML (*.html);;PDF (*.pdf);;CSV (*.csv)",
        )
        if out:
            self.export_report(out)

    # -- answers from the workers ------------------------------------------------------------

    def on_part(self, part: PartView) -> None:
        self._pending = part

    def render_pending(self) -> None:
        """Draw the newest part (called by the render timer)."""
        part, self._pending = self._pending, None
        if part is None:
            return
        self.current = part
        self.banner.show_part(part)
        caption = "" if part.image is not None else "no image (vibration only)"
        self.part_image.show_image(part.image, part.box, caption)
        self.spectrum.set_spectrum(
            part.spectrum_hz, part.spectrum_db, f"vibration spectrum · part {part.part_id}"
        )
        self.override_button.setEnabled(part.inspection_id is not None)
        self.display.record(time.monotonic())

    def on_parts_committed(self, n: int) -> None:
        self.parts_committed += n
        self._log_dirty = True

    def _refresh_log_if_new(self) -> None:
        if self._log_dirty and self.log_panel.page == 0:
            self._log_dirty = False
            self.log_panel.refresh()

    def on_counters(self, counters: CounterView) -> None:
        self.counters_view = counters
        self.counters.show_counters(counters)

    def on_health(self, health: SourceHealth) -> None:
        self.health_view = health
        self.counters.show_health(health)
        running = health.state in ("running", "reconnecting", "stopping", "loading")
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(health.state in ("running", "reconnecting"))

    def on_line_changed(self, line: str, version: str, classes: list[str]) -> None:
        self.line, self.model_version, self.classes = line, version, list(classes)
        self.line_box.setCurrentText(line)
        self.setWindowTitle(f"inspect-app console — line {line} {version}")
        self.log_panel.set_line(line, self.classes)
        self.show_message(f"line {line} {version} loaded ({len(classes)} defect classes)")

    def on_newer_version(self, line: str, active: str, running: str) -> None:
        self.show_message(
            f"line {line}: {active} is now its active version (this console inspects with "
            f"{running}); choose line {line} in the line switch to load it"
        )

    def on_drift(self, state: DriftState | None) -> None:
        """The line's scores drifted (a banner under the counters stays until they are back),
        came back, or another line started."""
        self.counters.show_drift(state)
        if state is not None:
            said = (
                state.describe(self.line)
                if state.drifted
                else (f"line {self.line} {state.version}: the scores are back to its first parts'")
            )
            self.show_message(said)

    def on_page(self, page: LogPage) -> None:
        self.log_panel.show_page(page)

    def on_override_done(self, outcome: OverrideOutcome) -> None:
        if outcome.error is not None or outcome.row is None:
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Override not saved",
                outcome.error or "unknown error",
                QMessageBox.StandardButton.Ok,
                self,
            )
            box.open()  # not exec(): a modal loop here would stall the live view
            self.error_box = box
            self.show_message(f"override not saved: {outcome.error}")
            return
        self.show_message("override saved: " + row_summary(outcome.row).replace("\n", " · "))
        self.log_panel.refresh()

    def on_snapshot(self, row: InspectionRow, image: object) -> None:
        self.snapshot_dialog.show_row(row, image)  # type: ignore[arg-type]
        self.snapshot_dialog.show()

    def show_message(self, text: str) -> None:
        self.messages.append(text)
        status = self.statusBar()
        if status is not None:
            status.showMessage(text, 15000)

    # -- closing -----------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Finish the parts in flight, then stop both worker threads (idempotent)."""
        self.render_timer.stop()
        self.log_timer.stop()
        for thread, worker in ((self.line_thread, self.line_worker), (self.log_thread, None)):
            if not thread.isRunning():
                continue
            if worker is not None:
                QMetaObject.invokeMethod(
                    worker, "shutdown", Qt.ConnectionType.BlockingQueuedConnection
                )
            thread.quit()
            thread.wait(30_000)
