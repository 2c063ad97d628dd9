"""What each report table holds — headers, rows and which columns are numbers — for every format.

The HTML and PDF reports lay these out their own way; the content is decided once, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inspect_app.report.data import GroupCount, ReportData
from inspect_app.report.text import CORRECTIONS_SHOWN, pct, score, when


@dataclass(frozen=True)
class ReportTable:
    """A table of a report: `numeric` holds the indices of right-aligned (number) columns."""

    headers: tuple[str, ...]
    rows: list[tuple[object, ...]]
    numeric: frozenset[int]


def totals_table(data: ReportData) -> ReportTable:
    """Totals and yield, after operator overrides and as the machine called them."""
    verdicts = (("after operator overrides", data.totals), ("machine verdicts", data.machine))
    rows: list[tuple[object, ...]] = [
        (
            label,
            c.parts,
            c.passed,
            c.failed,
            c.faults,
            pct(c.yield_pct),
            pct(c.fail_pct),
            pct(c.fault_pct),
        )
        for label, c in verdicts
    ]
    headers = ("", "parts", "passed", "failed", "faults", "yield", "fail rate", "fault rate")
    return ReportTable(headers, rows, frozenset(range(1, 8)))


def groups_table(groups: Sequence[GroupCount], first: str) -> ReportTable:
    """Parts, verdicts and rates per group (a line, or a line's model version)."""
    rows: list[tuple[object, ...]] = [
        (g.name, g.parts, g.passed, g.failed, g.faults, pct(g.yield_pct), pct(g.fail_pct))
        for g in groups
    ]
    headers = (first, "parts", "passed", "failed", "faults", "yield", "fail rate")
    return ReportTable(headers, rows, frozenset(range(1, 7)))


def faults_table(data: ReportData) -> ReportTable:
    """Parts not inspected, by cause: how many, their share of the faults, when the cause last
    struck, and its most frequent reason as logged (it names the file or source)."""
    total = sum(f.parts for f in data.faults_by_cause)
    rows: list[tuple[object, ...]] = [
        (f.cause, f.parts, pct(100 * f.parts / total), when(f.last), shorten(f.example))
        for f in data.faults_by_cause
    ]
    headers = ("cause", "parts", "share", "last", "reason, as logged (most frequent)")
    return ReportTable(headers, rows, frozenset({1, 2}))


def shorten(text: str, limit: int = 160) -> str:
    """`text` cut to `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def pareto_table(data: ReportData) -> ReportTable:
    """Fails per defect class, largest first, with each class's share and the running share."""
    total = sum(n for _, n in data.fails_by_class)
    rows: list[tuple[object, ...]] = []
    running = 0
    for name, n in data.fails_by_class:
        running += n
        rows.append((name, n, pct(100 * n / total), pct(100 * running / total)))
    return ReportTable(("class", "fails", "share", "cumulative"), rows, frozenset({1, 2, 3}))


def hourly_table(data: ReportData) -> ReportTable:
    """Parts, fails and fail rate per hour, in the plant's zone."""
    rows: list[tuple[object, ...]] = [
        (when(h.start), h.parts, h.failed, pct(h.fail_pct)) for h in data.hourly
    ]
    return ReportTable(
        ("hour starting", "parts", "failed", "fail rate"), rows, frozenset({1, 2, 3})
    )


def corrections_table(data: ReportData) -> ReportTable:
    """The most frequent class corrections (machine class → operator class)."""
    rows: list[tuple[object, ...]] = list(data.corrections[:CORRECTIONS_SHOWN])
    return ReportTable(("machine class", "corrected to", "parts"), rows, frozenset({2}))


def overrides_table(data: ReportData) -> ReportTable:
    """The latest operator overrides, newest first."""
    rows: list[tuple[object, ...]] = [
        (
            when(o.time),
            o.line,
            o.part_id,
            o.action,
            o.operator,
            o.previous_class or "",
            o.new_class or "",
            o.note,
        )
        for o in data.overrides
    ]
    headers = ("overridden", "line", "part", "action", "operator", "from", "to", "note")
    return ReportTable(headers, rows, frozenset())


def worst_table(data: ReportData) -> ReportTable:
    """The failed parts with the highest defect scores."""
    rows: list[tuple[object, ...]] = [
        (
            when(w.time),
            w.line,
            w.part_id,
            w.defect_class or "",
            score(w.defect_score),
            w.model_version or "",
            w.operator_action or "",
        )
        for w in data.worst
    ]
    headers = ("time", "line", "part", "class", "score", "model", "operator")
    return ReportTable(headers, rows, frozenset({4}))
