"""The counters row (parts, fails, yield, parts/s, dropped), the source's health and, while the
line's scores drift or its parts cannot be inspected, a banner saying so."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from inspect_app.defaults import FAULT_RUN_UNHEALTHY
from inspect_app.drift import DriftState
from ui.view_state import CounterView, SourceHealth

HEALTH_COLOURS = {
    "running": "#1b7f2a",
    "reconnecting": "#f2a900",
    "loading": "#1565c0",
    "stopping": "#1565c0",
    "error": "#c62828",
}


class _Tile(QFrame):
    def __init__(self, title: str) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.value = QLabel("–")
        self.title = QLabel(title)
        font = self.value.font()
        font.setPointSize(30)
        font.setBold(True)
        self.value.setFont(font)
        small = self.title.font()
        small.setPointSize(13)
        self.title.setFont(small)
        for label in (self.value, self.title):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.setSpacing(0)
        layout.addWidget(self.value)
        layout.addWidget(self.title)


def _banner(font: QFont, style: str) -> QLabel:
    """A hidden, wrapping line of text in `style`, shown while there is something to say."""
    label = QLabel()
    label.setFont(font)
    label.setWordWrap(True)
    label.setContentsMargins(8, 4, 8, 4)
    label.setStyleSheet(style)
    label.hide()
    return label


class CountersPanel(QWidget):
    """Big numbers for the shift; the source's state in colour under them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tiles = {
            name: _Tile(title)
            for name, title in (
                ("parts", "parts"),
                ("fails", "fails"),
                ("faults", "faults"),
                ("yield", "yield"),
                ("rate", "parts/s"),
                ("dropped", "dropped"),
            )
        }
        self.health = QLabel("source: idle")
        font = self.health.font()
        font.setPointSize(15)
        font.setBold(True)
        self.health.setFont(font)
        self.health.setWordWrap(True)
        self.health.setContentsMargins(8, 4, 8, 4)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        for i, tile in enumerate(self.tiles.values()):
            grid.addWidget(tile, i // 3, i % 3)
        grid.addWidget(self.health, 2, 0, 1, 3)
        self.drift = _banner(font, "background-color: #f2a900; color: #1a1a1a;")
        grid.addWidget(self.drift, 3, 0, 1, 3)
        # parts in a row that could not be inspected
        self.blind = _banner(font, "background-color: #c62828; color: white;")
        grid.addWidget(self.blind, 4, 0, 1, 3)
        self.counters = CounterView("")

    def show_counters(self, c: CounterView) -> None:
        self.counters = c
        self.tiles["parts"].value.setText(f"{c.parts:,}")
        self.tiles["fails"].value.setText(f"{c.fails:,}")
        self.tiles["faults"].value.setText(f"{c.faults:,}")
        self.tiles["yield"].value.setText("–" if c.yield_pct is None else f"{c.yield_pct:.1f} %")
        self.tiles["rate"].value.setText(f"{c.parts_per_s:.1f}")
        self.tiles["dropped"].value.setText(f"{c.dropped:,}")
        self.tiles["dropped"].value.setStyleSheet("color: #c62828;" if c.dropped else "")
        if c.fault_run >= FAULT_RUN_UNHEALTHY:
            self.blind.setText(
                f"not inspecting: the last {c.fault_run} parts could not be inspected (all "
                f"rejected)\n{c.last_fault or ''}"
            )
            self.blind.show()
        else:
            self.blind.hide()

    def show_health(self, h: SourceHealth) -> None:
        text = f"source {h.state}"
        if h.source:
            text += f": {h.source}"
        extra = []
        if h.reconnects or h.gaps or h.failed_reads:
            extra.append(f"{h.reconnects} reconnects, {h.gaps} gaps, {h.failed_reads} failed reads")
        if h.repeated_frames:
            extra.append(f"{h.repeated_frames} frozen frames (identical to the one before)")
        if h.detail:
            extra.append(h.detail)
        if extra:
            text += "\n" + " · ".join(extra)
        self.health.setText(text)
        colour = HEALTH_COLOURS.get(h.state, "#3c4043")
        text_colour = "#1a1a1a" if h.state == "reconnecting" else "#ffffff"
        self.health.setStyleSheet(f"background-color: {colour}; color: {text_colour};")

    def show_drift(self, state: DriftState | None) -> None:
        """While the line's scores have drifted: what changed, in the operator's words."""
        if state is None or not state.drifted:
            self.drift.hide()
            return
        text = f"scores drifting {state.direction} than {state.version}'s first parts"
        if state.rejected_reference is not None and state.rejected_recent is not None:
            text += (
                f": rejected {100 * state.rejected_reference:.0f} % then, "
                f"{100 * state.rejected_recent:.0f} % now"
            )
        text += "\ncheck the light, the camera, the material"
        self.drift.setText(text)
        self.drift.show()
