"""The verdict banner: PASS green / FAIL red / FAULT amber, class and score, readable from 2 m."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ui.view_state import PartView

COLOURS: dict[str, tuple[str, str]] = {
    "PASS": ("#1b7f2a", "#ffffff"),
    "FAIL": ("#c62828", "#ffffff"),
    "FAULT": ("#f2a900", "#1a1a1a"),
    "": ("#3c4043", "#e8eaed"),
}
"""Verdict → (background, text). Amber carries dark text: white on amber is hard to read."""


def score_text(part: PartView) -> str:
    """ "score 0.91 · limit 0.50": the limit beside the score, so a FAIL at a low score reads."""
    if part.defect_score is None:
        return ""
    return f"score {part.defect_score:.3g} · limit {part.threshold:.3g}"


def banner_text(part: PartView) -> tuple[str, str]:
    """The big word and the detail line under it."""
    if part.verdict == "FAIL":
        name = (part.defect_class or "unclassified defect").replace("_", " ")
        return "FAIL", f"{name.upper()}   {score_text(part)}".strip()
    if part.verdict == "FAULT":
        return "FAULT", "not inspected: " + (part.fault_reason or "unknown reason")
    return "PASS", score_text(part)


class VerdictBanner(QWidget):
    """The last part's verdict in letters tall enough to read across the line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAutoFillBackground(True)
        self.setMinimumHeight(170)
        self.word = QLabel("READY")
        self.detail = QLabel("no part inspected yet")
        self.part = QLabel("")
        for label, size, bold in (
            (self.word, 78, True),
            (self.detail, 30, True),
            (self.part, 16, False),
        ):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            font = label.font()
            font.setPointSize(size)
            font.setBold(bold)
            label.setFont(font)
        self.detail.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 4, 12, 6)
        layout.setSpacing(0)
        layout.addWidget(self.word)
        layout.addWidget(self.detail)
        layout.addWidget(self.part)
        self.verdict = ""
        self._paint("")

    def show_part(self, part: PartView) -> None:
        word, detail = banner_text(part)
        self.verdict = part.verdict
        self.word.setText(word)
        self.detail.setText(detail)
        self.part.setText(f"part {part.part_id}  ·  line {part.line} {part.model_version}")
        self._paint(part.verdict)

    def _paint(self, verdict: str) -> None:
        background, text = COLOURS.get(verdict, COLOURS[""])
        self.setStyleSheet(f"background-color: {background}; color: {text};")
