"""The CSV report: every inspection in range, and its defects in a second file beside it.

Times are written in the plant's zone with their UTC offset (ISO 8601). Text that came from the
log and starts with `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet shows it as text
instead of running it as a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inspect_app.report.atomic import atomic_text
from inspect_app.report.data import (
    INSPECTION_FIELDS,
    ReportQuery,
    check_range,
    defect_rows,
    inspection_rows,
)
from inspect_app.store import DefectStore

DEFECT_FIELDS = (
    "inspection_id",
    "time",
    "line",
    "part_id",
    "defect_class",
    "score",
    "x0",
    "y0",
    "x1",
    "y1",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CsvResult:
    """The two files written and their row counts."""

    inspections_file: Path
    defects_file: Path
    inspections: int
    defects: int


def defects_path(out: Path) -> Path:
    """Where the defects table goes: beside `out`, named `<stem>_defects.csv`."""
    return out.with_name(f"{out.stem}_defects.csv")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="milliseconds")  # type: ignore[union-attr]
    return "" if value is None else value


def write_csv(store: DefectStore, query: ReportQuery, out: Path) -> CsvResult:
    """Write the inspections CSV at `out` and the defects CSV beside it."""
    check_range(store, query)
    n = _write_rows(out, INSPECTION_FIELDS, inspection_rows(store, query))
    second = defects_path(out)
    m = _write_rows(second, DEFECT_FIELDS, defect_rows(store, query))
    return CsvResult(out, second, n, m)


def _write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write one CSV file whole (or not at all); returns how many rows it holds."""
    n = 0
    with atomic_text(path) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
            n += 1
    return n
