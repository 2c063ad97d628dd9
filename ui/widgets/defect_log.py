"""The defect log as a paged table over the store, with filters by class, verdict and time.

`DefectLogModel` holds one page of plain `InspectionRow`s; the panel asks for pages with
`page_requested(LogQuery)` (answered by the log worker) and never touches the database itself.
"""

from __future__ import annotations

from typing import Any

from PyQt6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor, QFont
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from inspect_app.store import InspectionRow
from ui.view_state import TIME_WINDOWS, LogPage, LogQuery

ALL = "all"
COLUMNS: tuple[str, ...] = ("time", "part", "line", "verdict", "class", "score", "operator")
VERDICT_COLUMN = COLUMNS.index("verdict")
TO_CHECK = "to check"  # the operator column of a passed part picked for a check, not yet done
PASS_TO_CHECK = "PASS to check"  # the verdict filter for those parts
COLUMN_WIDTHS: tuple[int, ...] = (100, 260, 130, 150, 230, 70)  # the last column stretches
VERDICT_COLOURS = {"PASS": "#1b7f2a", "FAIL": "#c62828", "FAULT": "#b07800"}

Index = QModelIndex | QPersistentModelIndex


def _cell(row: InspectionRow, column: str) -> str:
    if column == "time":
        return row.timestamp.astimezone().strftime("%H:%M:%S")
    if column == "part":
        return row.part_id
    if column == "line":
        return row.line
    if column == "verdict":
        if row.effective_verdict != row.verdict:
            return f"{row.verdict} → {row.effective_verdict}"
        return row.verdict
    if column == "class":
        if row.effective_class != row.defect_class and row.operator_action:
            return f"{row.defect_class or '–'} → {row.effective_class or '–'}"
        return row.defect_class or ("–" if row.verdict != "FAULT" else "not inspected")
    if column == "score":
        return "" if row.defect_score is None else f"{row.defect_score:.3g}"
    if row.operator_action is None:
        return TO_CHECK if row.to_check else ""
    return f"{row.operator_action.replace('_', ' ')} ({row.operator})"


class DefectLogModel(QAbstractTableModel):
    """One page of the defect log (model/view: the view scrolls, the panel pages)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: tuple[InspectionRow, ...] = ()
        self.cells: list[list[str]] = []  # display text, made once per page
        self._bold = QFont()
        self._bold.setBold(True)
        self._brushes = {v: QBrush(QColor(c)) for v, c in VERDICT_COLOURS.items()}

    def set_rows(self, rows: tuple[InspectionRow, ...]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.cells = [[_cell(r, c) for c in COLUMNS] for r in rows]
        self.endResetModel()

    def row_at(self, index: Index) -> InspectionRow | None:
        return self.rows[index.row()] if index.isValid() and index.row() < len(self.rows) else None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = self.row_at(index)
        if row is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cells[index.row()][index.column()]
        is_verdict = index.column() == VERDICT_COLUMN
        if role == Qt.ItemDataRole.ForegroundRole and is_verdict:
            return self._brushes.get(row.effective_verdict)
        if role == Qt.ItemDataRole.FontRole and is_verdict:
            return self._bold
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.fault_reason or row.operator_note or None
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None


class DefectLogPanel(QWidget):
    """Filters, the table and the pager. Emits `page_requested`; shows `LogPage`s it is given."""

    page_requested = pyqtSignal(object)  # LogQuery
    row_clicked = pyqtSignal(object)  # InspectionRow

    def __init__(self, parent: QWidget | None = None, page_size: int = 50) -> None:
        super().__init__(parent)
        self.page_size = page_size
        self.page = 0
        self.serial = 0
        self.line: str | None = None
        self.last_page: LogPage | None = None
        self.model = DefectLogModel()

        self.verdict_box = QComboBox()
        self.verdict_box.addItems([ALL, "FAIL", "FAULT", "PASS", PASS_TO_CHECK])
        self.class_box = QComboBox()
        self.class_box.addItem(ALL)
        self.time_box = QComboBox()
        self.time_box.addItems(list(TIME_WINDOWS))
        self.line_box = QComboBox()
        self.line_box.addItems(["this line", "all lines"])
        for box in (self.verdict_box, self.class_box, self.time_box, self.line_box):
            box.currentIndexChanged.connect(self.first_page)

        self.prev_button = QPushButton("◀ newer")
        self.next_button = QPushButton("older ▶")
        self.prev_button.clicked.connect(lambda: self.go(self.page - 1))
        self.next_button.clicked.connect(lambda: self.go(self.page + 1))
        self.pager = QLabel("")

        bar = QHBoxLayout()
        for text, box in (
            ("verdict", self.verdict_box),
            ("class", self.class_box),
            ("time", self.time_box),
            ("line", self.line_box),
        ):
            bar.addWidget(QLabel(text))
            bar.addWidget(box)
        bar.addStretch(1)
        bar.addWidget(self.prev_button)
        bar.addWidget(self.pager)
        bar.addWidget(self.next_button)

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        # Fixed sizes: sizing to contents would call `data()` for every cell on every page, and
        # each call from Qt into Python waits for the GIL the pipeline threads are using.
        header = self.table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for i, width in enumerate(COLUMN_WIDTHS):
            self.table.setColumnWidth(i, width)
        rows = self.table.verticalHeader()
        assert rows is not None
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(30)
        rows.setVisible(False)
        self.table.clicked.connect(self._clicked)
        for widget in (self.table, self.verdict_box, self.class_box, self.time_box, self.line_box):
            font = widget.font()
            font.setPointSize(12)
            widget.setFont(font)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.table)

    def set_line(self, line: str, classes: list[str]) -> None:
        """The line the window runs now: its classes fill the class filter."""
        self.line = line
        current = self.class_box.currentText()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItems([ALL, *classes])
        if current in classes:
            self.class_box.setCurrentText(current)
        self.class_box.blockSignals(False)
        self.first_page()

    def query(self) -> LogQuery:
        verdict = self.verdict_box.currentText()
        defect_class = self.class_box.currentText()
        to_check = verdict == PASS_TO_CHECK
        return LogQuery(
            line=self.line if self.line_box.currentIndex() == 0 else None,
            verdict=None if verdict == ALL else "PASS" if to_check else verdict,
            to_check=to_check,
            defect_class=None if defect_class in (ALL, "") else defect_class,
            window=self.time_box.currentText(),
            page=self.page,
            page_size=self.page_size,
            serial=self.serial,
        )

    def first_page(self) -> None:
        self.go(0)

    def go(self, page: int) -> None:
        if page < 0:
            return
        if self.last_page is not None and page >= self.last_page.pages and page > self.page:
            return
        self.page = page
        self.refresh()

    def refresh(self) -> None:
        """Ask for the current page again (new rows, an override)."""
        self.serial += 1
        self.page_requested.emit(self.query())

    def show_page(self, page: LogPage) -> None:
        if page.query.serial != self.serial:
            return  # the filters changed since this was asked for
        selected = self.selected_row()
        self.last_page = page
        self.model.set_rows(page.rows)
        self.pager.setText(f"page {page.query.page + 1} / {page.pages} · {page.total:,} parts")
        self.prev_button.setEnabled(page.query.page > 0)
        self.next_button.setEnabled(page.query.page + 1 < page.pages)
        if selected is not None:
            for i, row in enumerate(page.rows):
                if row.id == selected.id:
                    self.table.selectRow(i)
                    break

    def selected_row(self) -> InspectionRow | None:
        selection = self.table.selectionModel()
        if selection is None or not selection.selectedRows():
            return None
        return self.model.row_at(selection.selectedRows()[0])

    def _clicked(self, index: QModelIndex) -> None:
        row = self.model.row_at(index)
        if row is not None:
            self.row_clicked.emit(row)
