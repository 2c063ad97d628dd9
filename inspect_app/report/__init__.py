"""Defect reports for the quality manager: CSV, HTML and PDF from the defect log.

`write_report(store, "html", out, query)` is the one entry point (the `report` and `demo`
commands use it); `load_report` gives the numbers as a plain `ReportData`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inspect_app.report.data import (
    EmptyReport,
    ReportData,
    ReportQuery,
    load_report,
    parse_time,
    parse_window,
    plant_zone,
)
from inspect_app.store import DefectStore

FORMATS: tuple[str, ...] = ("csv", "html", "pdf")


@dataclass(frozen=True)
class ReportOutcome:
    """What was written: the files and how many inspections they cover."""

    files: tuple[Path, ...]
    inspections: int


def write_report(
    store: DefectStore,
    fmt: str,
    out: Path,
    query: ReportQuery,
    snapshot_dirs: tuple[Path, ...] = (),
) -> ReportOutcome:
    """Write one report; `EmptyReport` (and no file) when the range holds no inspections."""
    if fmt == "csv":
        from inspect_app.report.csv_report import write_csv

        result = write_csv(store, query, out)
        return ReportOutcome((result.inspections_file, result.defects_file), result.inspections)
    if fmt not in FORMATS:
        msg = f"report format {fmt!r} is not one of {', '.join(FORMATS)}"
        raise ValueError(msg)
    data = load_report(store, query, snapshot_dirs)
    if fmt == "html":
        from inspect_app.report.html_report import write_html

        write_html(data, out)
    else:
        from inspect_app.report.pdf_report import write_pdf

        write_pdf(data, out)
    return ReportOutcome((out,), data.totals.parts)


__all__ = [
    "FORMATS",
    "EmptyReport",
    "ReportData",
    "ReportOutcome",
    "ReportQuery",
    "load_report",
    "parse_time",
    "parse_window",
    "plant_zone",
    "write_report",
]
