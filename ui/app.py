"""Starts the operator console: the defect log, the line loader, the QApplication, the window."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inspect_app.snapshots import snapshot_dir_for
from inspect_app.store import DefectStore
from ui.worker import ConsoleSettings, LineLoader, product_loader

if TYPE_CHECKING:
    from PyQt6.QtCore import QTimer

    from ui.main_window import MainWindow


@dataclass(frozen=True)
class ConsoleOptions:
    """Everything `inspect-app console` is told."""

    home: Path
    line: str
    lines: tuple[str, ...]
    db_url: str
    source: str = ""
    backend: str = "torch"
    precision: str = "fp32"  # which exported graph onnxruntime runs
    vibration: str | None = None
    window_s: float | None = None
    watch: bool = False
    recursive: bool = False  # the hot folder's subfolders too
    sample_rate_hz: float | None = None
    audit_every: int | None = None  # one passed part in N picked for a check (AuditSampler)
    operator: str = ""
    autostart: bool = False
    full_screen: bool = False


def build_window(
    options: ConsoleOptions, store: DefectStore, loader: LineLoader | None = None
) -> MainWindow:
    """The console window over `store` (a QApplication must exist)."""
    from ui.main_window import MainWindow

    settings = ConsoleSettings(
        home=options.home,
        db_url=options.db_url,
        vibration=options.vibration,
        window_s=options.window_s,
        watch=options.watch,
        recursive=options.recursive,
        sample_rate_hz=options.sample_rate_hz,
        audit_every=options.audit_every,
    )
    snapshots = snapshot_dir_for(options.db_url, options.home)
    return MainWindow(
        store,
        loader or product_loader(options.home, options.backend, precision=options.precision),
        settings,
        options.line,
        list(options.lines),
        source=options.source,
        snapshot_dirs=(snapshots, options.home),
        operator=options.operator,
    )


def close_on_stop_signals(window: MainWindow) -> QTimer:
    """SIGTERM / SIGINT close the window: the parts in flight are finished and logged first.

    Python runs signal handlers only between bytecodes, and Qt's event loop is C++; the returned
    timer wakes the interpreter every 200 ms so a signal is handled promptly.
    """
    from PyQt6.QtCore import QTimer

    def on_signal(signum: int, frame: object) -> None:
        del frame
        print(f"inspect-app console: {signal.Signals(signum).name}, finishing the parts in flight…",
              file=sys.stderr)  # fmt: skip
        window.close()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)
    return wake


def run_console(options: ConsoleOptions) -> int:
    """Open the window and run the Qt event loop until it is closed; the exit status."""
    import pyqtgraph as pg
    from PyQt6.QtWidgets import QApplication

    pg.setConfigOptions(antialias=True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    store = DefectStore.open(options.db_url)
    try:
        window = build_window(options, store)
        window.resize(1600, 1000)
        if options.full_screen:
            window.showFullScreen()
        else:
            window.show()
        if options.autostart and options.source:
            window.start()
        wake = close_on_stop_signals(window)
        code = int(app.exec())
        wake.stop()
        window.shutdown()
        return code
    finally:
        store.close()
