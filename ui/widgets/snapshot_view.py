"""A logged part's snapshot (the evidence saved for FAIL / FAULT parts) with its log entry."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from inspect_app.store import InspectionRow
from ui.widgets.part_view import PartImage


def row_summary(row: InspectionRow) -> str:
    """The log entry in words, for the dialog and the status bar."""
    text = f"part {row.part_id} · line {row.line} {row.model_version or ''} · {row.verdict}"
    if row.defect_class:
        text += f" {row.defect_class}"
    if row.defect_score is not None:
        text += f" (score {row.defect_score:.2f})"
    if row.fault_reason:
        text += f"\nnot inspected: {row.fault_reason}"
    if row.operator_action:
        text += (
            f"\noperator {row.operator}: {row.operator_action.replace('_', ' ')} → "
            f"{row.effective_verdict} {row.effective_class or ''}"
        )
        if row.operator_note:
            text += f" — {row.operator_note}"
    return text


class SnapshotDialog(QDialog):
    """Shows one part's snapshot; `override_requested` asks the window to open the override."""

    override_requested = pyqtSignal(object)  # InspectionRow

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Part snapshot")
        self.resize(560, 640)
        self.row: InspectionRow | None = None
        self.image = PartImage()
        self.info = QLabel("")
        self.info.setWordWrap(True)
        font = self.info.font()
        font.setPointSize(13)
        self.info.setFont(font)
        self.override_button = QPushButton("Override this part…")
        self.override_button.clicked.connect(self._override)
        layout = QVBoxLayout(self)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.info)
        layout.addWidget(self.override_button)

    def show_row(self, row: InspectionRow, image: np.ndarray | None) -> None:
        self.row = row
        caption = (
            "" if image is not None else "no snapshot kept (snapshots are saved for FAIL/FAULT)"
        )
        self.image.show_image(image, None, caption)
        self.info.setText(row_summary(row))
        self.setWindowTitle(f"Part {row.part_id}")

    def _override(self) -> None:
        if self.row is not None:
            self.override_requested.emit(self.row)
