"""The vibration spectrum (Welch PSD, dB) of the current part, redrawn from a QTimer.

Parts can arrive far faster than anyone can read a plot, so `set_spectrum` only stores the
newest spectrum; a 50 ms timer draws it if it changed. Drawing per sample would starve the
event loop at full line speed.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QTimer
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import QVBoxLayout, QWidget

REDRAW_MS = 50


def _fits(current: tuple[float, float, float], needed: tuple[float, float, float]) -> bool:
    """The shown range holds the data and is not much too wide (then it stays put)."""
    x, low, high = current
    nx, nlow, nhigh = needed
    return x == nx and low <= nlow <= low + 20.0 and high - 20.0 <= nhigh <= high


class SpectrumPlot(QWidget):
    """A pyqtgraph line plot of the newest vibration spectrum."""

    def __init__(self, parent: QWidget | None = None, redraw_ms: int = REDRAW_MS) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="#202124")
        label_style = {"color": "#e8eaed", "font-size": "12pt"}
        self.plot.setLabel("bottom", "frequency", units="Hz", **label_style)
        self.plot.setLabel("left", "PSD", units="dB", **label_style)
        tick_font = QFont()
        tick_font.setPointSize(11)
        for side in ("bottom", "left"):
            axis = self.plot.getAxis(side)
            axis.setTickFont(tick_font)
            axis.setTextPen("#e8eaed")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.title = "vibration spectrum"
        self.plot.setTitle(self.title, color="#e8eaed", size="13pt")
        self.curve = self.plot.plot(pen=pg.mkPen("#4fc3f7", width=2))
        self.curve.setSkipFiniteCheck(True)
        # Fixed ranges, moved only in 10 dB steps: re-ranging on every part would rebuild the
        # axes' ticks in Python on every redraw.
        self.plot.disableAutoRange()
        self.ranges: tuple[float, float, float] | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self._pending: tuple[np.ndarray, np.ndarray, str] | None = None
        self.redraws = 0
        self.timer = QTimer(self)
        self.timer.setInterval(redraw_ms)
        self.timer.timeout.connect(self.redraw)
        self.timer.start()

    def set_spectrum(self, freqs: np.ndarray | None, db: np.ndarray | None, title: str) -> None:
        """Store the newest spectrum (drawn on the next tick)."""
        if freqs is None or db is None:
            self._pending = (np.zeros(0), np.zeros(0), f"{title}: no vibration")
        else:
            self._pending = (freqs, db, title)

    def redraw(self) -> None:
        if self._pending is None:
            return
        freqs, db, title = self._pending
        self._pending = None
        self.curve.setData(freqs, db)
        if db.size:
            ranges = (
                float(freqs[-1]),
                10.0 * np.floor(float(db.min()) / 10.0),
                10.0 * np.ceil(float(db.max()) / 10.0),
            )
            if self.ranges is None or not _fits(self.ranges, ranges):
                self.ranges = ranges
                self.plot.setXRange(0.0, ranges[0], padding=0.02)
                self.plot.setYRange(ranges[1], ranges[2], padding=0.02)
        if title != self.title:
            self.title = title
            self.plot.setTitle(title, color="#e8eaed", size="13pt")
        self.redraws += 1
