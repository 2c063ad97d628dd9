"""What a defect report says, computed from the log once: the plain `ReportData` every format draws.

Counts follow the effective label (after operator overrides): yield is PASS / parts, fail rate is
FAIL / parts, fault rate (parts that could not be inspected, never counted good) is FAULT / parts.
The machine's own counts are kept beside them so overrides stay visible.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Connection, func, select

from inspect_app.decision import fault_cause
from inspect_app.snapshots import find_snapshot
from inspect_app.store import DefectStore, InspectionRow
from inspect_app.store.schema import Defect, Inspection, Line, ModelVersion, OperatorAction
from inspect_app.store.store import from_db_time, to_db_time

WORST_PARTS = 10
RECENT_OVERRIDES = 25


class EmptyReport(ValueError):
    """Nothing to report: an unknown line or an empty time range (no file is written)."""


@dataclass(frozen=True)
class ReportQuery:
    """Which part of the log a report covers, and the plant's time zone for showing times
    (default: `$TZ`, else the machine's zone)."""

    line: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    tz: tzinfo = field(default_factory=lambda: plant_zone()[0])
    tz_name: str = field(default_factory=lambda: plant_zone()[1])


@dataclass(frozen=True)
class GroupCount:
    """Parts and effective verdicts of one group (all parts, a line, a model version, an hour)."""

    name: str
    parts: int = 0
    passed: int = 0
    failed: int = 0
    faults: int = 0

    @property
    def yield_pct(self) -> float:
        return 100.0 * self.passed / self.parts if self.parts else 0.0

    @property
    def fail_pct(self) -> float:
        return 100.0 * self.failed / self.parts if self.parts else 0.0

    @property
    def fault_pct(self) -> float:
        return 100.0 * self.faults / self.parts if self.parts else 0.0


@dataclass(frozen=True)
class HourBucket:
    """One hour of the trend, starting at `start` in the plant's time zone."""

    start: datetime
    parts: int
    failed: int

    @property
    def fail_pct(self) -> float:
        return 100.0 * self.failed / self.parts if self.parts else 0.0


@dataclass(frozen=True)
class OverrideEntry:
    """One operator action, for the report's list of overrides."""

    time: datetime
    line: str
    part_id: str
    action: str
    operator: str
    previous_class: str | None
    new_class: str | None
    note: str


@dataclass(frozen=True)
class WorstPart:
    """A failed part with one of the highest defect scores."""

    inspection_id: int
    time: datetime
    line: str
    part_id: str
    model_version: str | None
    defect_class: str | None
    defect_score: float | None
    operator_action: str | None
    snapshot: Path | None
    snapshot_path: str | None


@dataclass(frozen=True)
class FaultCause:
    """Parts not inspected for one cause (`decision.fault_cause`) in the report's range."""

    cause: str
    parts: int
    last: datetime
    example: str  # the cause's most frequent reason, as the log holds it


@dataclass(frozen=True)
class ReportData:
    """Everything the CSV, HTML and PDF reports show; times are in `tz_name`."""

    db: str
    query: ReportQuery
    generated: datetime
    first: datetime
    last: datetime
    totals: GroupCount
    machine: GroupCount
    defects: int
    fails_by_class: list[tuple[str, int]]
    hourly: list[HourBucket]
    by_line: list[GroupCount]
    by_version: list[GroupCount]
    false_alarms: int
    relabels: int
    confirms: int
    corrections: list[tuple[str, str, int]]
    overrides: list[OverrideEntry] = field(default_factory=list)
    worst: list[WorstPart] = field(default_factory=list)
    # passed parts an operator checked (an audit sample, or found downstream), and how many of
    # them were defective after all (escapes)
    passes_checked: int = 0
    escapes: int = 0
    faults_by_cause: list[FaultCause] = field(default_factory=list)  # most parts first


def plant_zone(name: str | None = None) -> tuple[tzinfo, str]:
    """The plant's time zone: `name` (IANA, e.g. Europe/Berlin), else $TZ, else the machine's."""
    candidates = [name] if name else [os.environ.get("TZ"), _system_zone_name()]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate.lstrip(":")), candidate.lstrip(":")
        except (ZoneInfoNotFoundError, ValueError) as exc:
            if name:
                msg = f"time zone {name!r} is unknown; give an IANA name such as Europe/Berlin"
                raise ValueError(msg) from exc
    local = datetime.now().astimezone().tzinfo or timezone.utc
    return local, datetime.now(local).tzname() or "local"


def _system_zone_name() -> str | None:
    link = Path("/etc/localtime")
    try:
        target = str(link.resolve())
    except OSError:
        return None
    marker = "zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else None


def parse_window(
    since: str | None, until: str | None, tz: tzinfo
) -> tuple[datetime | None, datetime | None]:
    """--since / --until as aware times (`parse_time`), None where not given; ValueError when
    one is not understood or the window is empty."""
    start = parse_time(since, tz) if since else None
    end = parse_time(until, tz) if until else None
    if start and end and start >= end:
        msg = f"--since {since} is not before --until {until}"
        raise ValueError(msg)
    return start, end


def parse_time(value: str, tz: tzinfo, *, now: datetime | None = None) -> datetime:
    """`2026-03-02`, `2026-03-02T06:00` (plant time unless it carries an offset) or `24h` / `7d`
    (that long before now), as an aware datetime."""
    text = value.strip()
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1:] in units:
        base = now or datetime.now(timezone.utc)
        return base - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        msg = (
            f"time {value!r} is not understood; use 2026-03-02, 2026-03-02T06:00, "
            "2026-03-02T06:00+01:00, or 24h / 7d (before now)"
        )
        raise ValueError(msg) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


_COLUMNS = (
    Inspection.id,
    Inspection.timestamp,
    Line.name,
    ModelVersion.version,
    Inspection.part_id,
    Inspection.verdict,
    Inspection.defect_class,
    Inspection.defect_score,
    Inspection.anomaly_score,
    Inspection.effective_verdict,
    Inspection.effective_class,
    Inspection.last_action,
    Inspection.last_operator,
    Inspection.last_note,
    Inspection.fault_reason,
    Inspection.latency_ms,
    Inspection.label,
    Inspection.snapshot_path,
)
INSPECTION_FIELDS = (
    "id",
    "time",
    "line",
    "model_version",
    "part_id",
    "verdict",
    "defect_class",
    "defect_score",
    "anomaly_score",
    "effective_verdict",
    "effective_class",
    "operator_action",
    "operator",
    "operator_note",
    "fault_reason",
    "latency_ms",
    "label",
    "snapshot_path",
)


def _in_range(query: ReportQuery) -> list[ColumnElement[bool]]:
    """WHERE terms for the report's line and time range (the query joins `Line`)."""
    found: list[ColumnElement[bool]] = []
    if query.line is not None:
        found.append(Line.name == query.line)
    if query.since is not None:
        found.append(Inspection.timestamp >= to_db_time(query.since, "since"))
    if query.until is not None:
        found.append(Inspection.timestamp < to_db_time(query.until, "until"))
    return found


def check_range(store: DefectStore, query: ReportQuery) -> int:
    """How many inspections the report covers; `EmptyReport` for an unknown line or no parts."""
    if query.line is not None and query.line not in store.lines():
        known = ", ".join(store.lines()) or "none yet"
        msg = f"line {query.line!r} is not in the defect log {store.url} (lines: {known})"
        raise EmptyReport(msg)
    stmt = (
        select(func.count(Inspection.id))
        .join(Line, Inspection.line_id == Line.id)
        .where(*_in_range(query))
    )
    with store.engine.connect() as conn:
        n = int(conn.execute(stmt).scalar() or 0)
    if n == 0:
        where = f"line {query.line!r}" if query.line else "any line"
        span = _span_text(query)
        msg = f"no inspections of {where} {span} in the defect log {store.url}"
        raise EmptyReport(msg)
    return n


def _span_text(query: ReportQuery) -> str:
    def show(t: datetime | None) -> str:
        return "…" if t is None else t.astimezone(query.tz).strftime("%Y-%m-%d %H:%M")

    if query.since is None and query.until is None:
        return "at any time"
    return f"from {show(query.since)} to {show(query.until)} ({query.tz_name})"


def inspection_rows(store: DefectStore, query: ReportQuery) -> Iterator[tuple[Any, ...]]:
    """Every inspection in range, oldest first, as tuples in `INSPECTION_FIELDS` order.

    `time` is an aware datetime in the plant's zone.
    """
    stmt = (
        select(*_COLUMNS)
        .join(Line, Inspection.line_id == Line.id)
        .outerjoin(ModelVersion, Inspection.model_version_id == ModelVersion.id)
    )
    stmt = stmt.where(*_in_range(query)).order_by(Inspection.timestamp, Inspection.id)
    tz = query.tz
    with store.engine.connect() as conn:
        for row in conn.execution_options(yield_per=5000).execute(stmt):
            values = tuple(row)
            yield (values[0], from_db_time(values[1]).astimezone(tz), *values[2:])


def defect_rows(store: DefectStore, query: ReportQuery) -> Iterator[tuple[Any, ...]]:
    """Every defect of the inspections in range: inspection id, time, line, part, class, score,
    box (x0, y0, x1, y1)."""
    stmt = (
        select(
            Defect.inspection_id,
            Inspection.timestamp,
            Line.name,
            Inspection.part_id,
            Defect.defect_class,
            Defect.score,
            Defect.x0,
            Defect.y0,
            Defect.x1,
            Defect.y1,
        )
        .join(Inspection, Defect.inspection_id == Inspection.id)
        .join(Line, Inspection.line_id == Line.id)
    )
    stmt = stmt.where(*_in_range(query)).order_by(Inspection.timestamp, Defect.id)
    with store.engine.connect() as conn:
        for row in conn.execution_options(yield_per=5000).execute(stmt):
            values = tuple(row)
            yield (values[0], from_db_time(values[1]).astimezone(query.tz), *values[2:])


class _Tally:
    """Counts of effective verdicts for one group, built up row by row."""

    __slots__ = ("failed", "faults", "parts", "passed")

    def __init__(self) -> None:
        self.parts = self.passed = self.failed = self.faults = 0

    def add(self, verdict: str, n: int = 1) -> None:
        self.parts += n
        if verdict == "PASS":
            self.passed += n
        elif verdict == "FAIL":
            self.failed += n
        else:
            self.faults += n

    def frozen(self, name: str) -> GroupCount:
        return GroupCount(name, self.parts, self.passed, self.failed, self.faults)


def load_report(
    store: DefectStore, query: ReportQuery, snapshot_dirs: tuple[Path, ...] = ()
) -> ReportData:
    """Compute the report's numbers (`EmptyReport` when there is nothing to report).

    Relative snapshot paths are looked up in `snapshot_dirs` (e.g. HOME and the database's
    folder).
    """
    check_range(store, query)
    totals, machine = _Tally(), _Tally()
    by_line: dict[str, _Tally] = defaultdict(_Tally)
    by_version: dict[str, _Tally] = defaultdict(_Tally)
    classes: Counter[str] = Counter()
    joined = (
        select(
            Line.name,
            ModelVersion.version,
            Inspection.verdict,
            Inspection.effective_verdict,
            Inspection.effective_class,
            func.count(Inspection.id),
        )
        .join(Line, Inspection.line_id == Line.id)
        .outerjoin(ModelVersion, Inspection.model_version_id == ModelVersion.id)
        .where(*_in_range(query))
        .group_by(
            Line.name,
            ModelVersion.version,
            Inspection.verdict,
            Inspection.effective_verdict,
            Inspection.effective_class,
        )
    )
    with store.engine.connect() as conn:
        for line, version, verdict, eff_verdict, eff_class, n in conn.execute(joined):
            totals.add(eff_verdict, n)
            machine.add(verdict, n)
            by_line[line].add(eff_verdict, n)
            by_version[f"{line} / {version or '?'}"].add(eff_verdict, n)
            if eff_verdict == "FAIL":
                classes[eff_class or "(unclassified)"] += n
        first_last = conn.execute(
            select(func.min(Inspection.timestamp), func.max(Inspection.timestamp))
            .join(Line, Inspection.line_id == Line.id)
            .where(*_in_range(query))
        ).one()
        hourly = _hourly(conn, query)
        faults_by_cause = _faults_by_cause(conn, query)
        worst_ids = list(
            conn.scalars(
                select(Inspection.id)
                .join(Line, Inspection.line_id == Line.id)
                .where(*_in_range(query), Inspection.effective_verdict == "FAIL")
                .order_by(Inspection.defect_score.desc(), Inspection.id)
                .limit(WORST_PARTS)
            )
        )
    if first_last[0] is None or first_last[1] is None:  # the log changed since counting
        msg = f"no inspections left in range in the defect log {store.url}"
        raise EmptyReport(msg)
    tz = query.tz
    first, last = (from_db_time(t).astimezone(tz) for t in first_last)
    worst = [_worst(store.inspection(i), tz, snapshot_dirs) for i in worst_ids]
    overrides = _overrides(store, query)
    with store.engine.connect() as conn:
        n_defects = conn.execute(
            select(func.count(Defect.id))
            .join(Inspection, Defect.inspection_id == Inspection.id)
            .join(Line, Inspection.line_id == Line.id)
            .where(*_in_range(query))
        ).scalar()
    return ReportData(
        db=store.url,
        query=query,
        generated=datetime.now(tz),
        first=first,
        last=last,
        totals=totals.frozen("all parts"),
        machine=machine.frozen("machine verdicts"),
        defects=int(n_defects or 0),
        fails_by_class=sorted(classes.items(), key=lambda kv: (-kv[1], kv[0])),
        hourly=hourly,
        by_line=[t.frozen(name) for name, t in sorted(by_line.items())],
        by_version=[t.frozen(name) for name, t in sorted(by_version.items())],
        false_alarms=overrides.counts["false_alarm"],
        relabels=overrides.counts["relabel"],
        confirms=overrides.counts["confirm"],
        corrections=overrides.corrections,
        overrides=overrides.recent,
        worst=worst,
        passes_checked=overrides.passes_checked,
        escapes=overrides.escapes,
        faults_by_cause=faults_by_cause,
    )


@dataclass
class _Overrides:
    counts: Counter[str]
    corrections: list[tuple[str, str, int]]
    recent: list[OverrideEntry]
    passes_checked: int = 0
    escapes: int = 0


def _overrides(store: DefectStore, query: ReportQuery) -> _Overrides:
    """Operator actions on the parts in range (whenever the operator made them)."""
    stmt = (
        select(
            OperatorAction.created,
            Line.name,
            Inspection.part_id,
            OperatorAction.action,
            OperatorAction.operator,
            OperatorAction.previous_class,
            OperatorAction.new_class,
            OperatorAction.note,
            Inspection.id,
            Inspection.verdict,
            Inspection.effective_verdict,
        )
        .join(Inspection, OperatorAction.inspection_id == Inspection.id)
        .join(Line, Inspection.line_id == Line.id)
        .where(*_in_range(query))
    )
    counts: Counter[str] = Counter()
    moves: Counter[tuple[str, str]] = Counter()
    entries: list[OverrideEntry] = []
    checked: dict[int, bool] = {}  # passed part → defective after all (its latest label)
    with store.engine.connect() as conn:
        for row in conn.execute(stmt.order_by(OperatorAction.id)):
            created, line, part, action, operator, prev, new, note = row[:8]
            inspection_id, verdict, effective = row[8:]
            if verdict == "PASS":
                checked[inspection_id] = effective == "FAIL"
            counts[action] += 1
            if action == "relabel":
                moves[(prev or "(none: passed)", new or "?")] += 1
            entries.append(
                OverrideEntry(
                    from_db_time(created).astimezone(query.tz),
                    line,
                    part,
                    action,
                    operator,
                    prev,
                    new,
                    note,
                )
            )
    corrections = sorted(((a, b, n) for (a, b), n in moves.items()), key=lambda t: (-t[2], t[:2]))
    return _Overrides(
        counts,
        corrections,
        entries[-RECENT_OVERRIDES:][::-1],
        passes_checked=len(checked),
        escapes=sum(checked.values()),
    )


def _faults_by_cause(conn: Connection, query: ReportQuery) -> list[FaultCause]:
    """The machine's FAULT parts grouped by cause, with when each cause last struck."""
    stmt = (
        select(Inspection.fault_reason, func.count(Inspection.id), func.max(Inspection.timestamp))
        .join(Line, Inspection.line_id == Line.id)
        .where(*_in_range(query), Inspection.verdict == "FAULT")
        .group_by(Inspection.fault_reason)
    )
    parts: Counter[str] = Counter()
    last: dict[str, datetime] = {}
    example: dict[str, tuple[int, str]] = {}
    for reason, n, latest in conn.execute(stmt):
        cause = fault_cause(reason)
        parts[cause] += n
        when = from_db_time(latest).astimezone(query.tz)
        last[cause] = max(last.get(cause, when), when)
        if n > example.get(cause, (0, ""))[0]:
            example[cause] = (n, reason or "(no reason logged)")
    return [
        FaultCause(cause, n, last[cause], example[cause][1])
        for cause, n in sorted(parts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _hourly(conn: Connection, query: ReportQuery) -> list[HourBucket]:
    """Parts and fails per hour. Hours are bucketed in UTC and shown in the plant's zone, so a
    day when clocks change has 23 or 25 distinct hours (in a zone with a half-hour offset, an
    hour starts at :30)."""
    parts: Counter[datetime] = Counter()
    failed: Counter[datetime] = Counter()
    stmt = (
        select(Inspection.timestamp, Inspection.effective_verdict)
        .join(Line, Inspection.line_id == Line.id)
        .where(*_in_range(query))
    )
    for ts, verdict in conn.execution_options(yield_per=20000).execute(stmt):
        hour = ts.replace(minute=0, second=0, microsecond=0)
        parts[hour] += 1
        if verdict == "FAIL":
            failed[hour] += 1
    return [
        HourBucket(from_db_time(h).astimezone(query.tz), parts[h], failed[h]) for h in sorted(parts)
    ]


def _worst(row: InspectionRow, tz: tzinfo, snapshot_dirs: tuple[Path, ...]) -> WorstPart:
    return WorstPart(
        inspection_id=row.id,
        time=row.timestamp.astimezone(tz),
        line=row.line,
        part_id=row.part_id,
        model_version=row.model_version,
        defect_class=row.effective_class,
        defect_score=row.defect_score,
        operator_action=row.operator_action,
        snapshot=find_snapshot(row.snapshot_path, snapshot_dirs),
        snapshot_path=row.snapshot_path,
    )
