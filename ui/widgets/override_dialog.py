"""The operator's correction of a part: confirm the call (a defect, or a passed part checked and
found good), false alarm, or relabel the class."""

from __future__ import annotations

from PyQt6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ui.view_state import OVERRIDE_ACTIONS, OverrideRequest

CONFIRM_GOOD = "Confirm good (checked: no defect)"


class OverrideDialog(QDialog):
    """Asks who, what and why; `request()` gives the `OverrideRequest` once accepted."""

    def __init__(
        self,
        inspection_id: int,
        part_id: str,
        verdict: str,
        defect_class: str | None,
        classes: list[str],
        operator: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Override part {part_id}")
        self.inspection_id = inspection_id
        self.header = QLabel(
            f"Part {part_id}: machine said <b>{verdict}</b>"
            + (f" ({defect_class})" if defect_class else "")
        )
        self.buttons_group = QButtonGroup(self)
        self.radios: dict[str, QRadioButton] = {}
        for action, text in OVERRIDE_ACTIONS.items():
            radio = QRadioButton(text)
            self.radios[action] = radio
            self.buttons_group.addButton(radio)
        # A passed part has no alarm to call false; a good part called bad is the usual case.
        # Confirming a passed part records that someone checked it and found it good: the
        # evidence `calibrate --from-db` needs before it lets the threshold rise.
        self.radios["false_alarm"].setEnabled(verdict != "PASS")
        if verdict == "PASS":
            self.radios["confirm"].setText(CONFIRM_GOOD)
        self.radios["relabel" if verdict == "PASS" else "confirm"].setChecked(True)
        self.class_box = QComboBox()
        self.class_box.setEditable(True)
        self.class_box.addItems(classes)
        if defect_class:
            self.class_box.setCurrentText(defect_class)
        self.operator = QLineEdit(operator)
        self.operator.setPlaceholderText("your name")
        self.note = QPlainTextEdit()
        self.note.setPlaceholderText("what you saw (optional)")
        self.note.setFixedHeight(70)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c62828;")

        form = QFormLayout()
        form.addRow("new class", self.class_box)
        form.addRow("operator", self.operator)
        form.addRow("note", self.note)
        box = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        box.accepted.connect(self._accept)
        box.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        for radio in self.radios.values():
            layout.addWidget(radio)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(box)
        self.buttons_group.buttonToggled.connect(self._update)
        self._update()

    def action(self) -> str:
        return next(a for a, r in self.radios.items() if r.isChecked())

    def _update(self) -> None:
        self.class_box.setEnabled(self.action() == "relabel")

    def request(self) -> OverrideRequest:
        action = self.action()
        return OverrideRequest(
            inspection_id=self.inspection_id,
            action=action,
            operator=self.operator.text().strip(),
            note=self.note.toPlainText().strip(),
            new_class=self.class_box.currentText().strip() if action == "relabel" else None,
        )

    def _accept(self) -> None:
        req = self.request()
        if not req.operator:
            self.error.setText("Enter your name: every override is signed.")
            return
        if req.action == "relabel" and not req.new_class:
            self.error.setText("Choose or type the defect class you see.")
            return
        self.accept()
