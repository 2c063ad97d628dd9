"""`DefectStore`: the defect log behind one small API (see docs/internals.md).

SQLite (the default, in HOME) runs in WAL mode with `synchronous=NORMAL`, which survives a
killed process without losing a committed row (only a power cut can lose the last commits),
foreign keys on and a busy timeout; writes take the write lock up front (`BEGIN IMMEDIATE`) so a
busy database waits instead of failing half-way. PostgreSQL is used by URL
(`postgresql+psycopg://user@host/db`) with a lock timeout of the same length.

Duplicates: an inspection is unique on (line, part_id). Adding one that is already in the log is
an idempotent skip: the stored row is kept unchanged and its id is returned, so a service that
restarts after a crash can re-send its last batch safely (`seen_part_ids(line)` lets it skip
parts before inspecting them again).

A database that is locked, full, read-only or unreachable raises `StoreUnavailable`, naming
the database and the problem, so the caller can hold its parts and retry.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from inspect_app.home import validate_line_name
from inspect_app.store.errors import StoreError, StoreUnavailable, classify, safe_url
from inspect_app.store.records import (
    OPERATOR_ACTIONS,
    VERDICTS,
    Box,
    DefectRecord,
    DefectRow,
    InspectionRecord,
    InspectionRow,
    ModelVersionRow,
    OperatorActionRow,
)
from inspect_app.store.schema import Defect, Inspection, Line, ModelVersion, OperatorAction

_IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit


def to_db_time(value: datetime, what: str) -> datetime:
    """An aware datetime as naive UTC, the way the log stores it; naive input is refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{what} {value.isoformat()} has no time zone; give an aware datetime (UTC)"
        raise ValueError(msg)
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def from_db_time(value: datetime) -> datetime:
    """A stored naive-UTC time as an aware UTC datetime."""
    return value.replace(tzinfo=timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _box(x0: float | None, y0: float | None, x1: float | None, y1: float | None) -> Box | None:
    if x0 is None or y0 is None or x1 is None or y1 is None:
        return None
    return (x0, y0, x1, y1)


def _check_box(box: Box | None, part_id: str) -> Box | None:
    if box is None:
        return None
    if len(box) != 4:
        msg = f"part {part_id!r}: box {box!r} must be (x0, y0, x1, y1) in 0..1 of the frame"
        raise ValueError(msg)
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _migrations_dir() -> str:
    return str(resources.files("inspect_app") / "migrations")


class DefectStore:
    """The defect log. Open with `DefectStore.open(url)`; use as a context manager or `close()`."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        self._url = url
        self._lock = threading.Lock()
        self._line_ids: dict[str, int] = {}
        self._version_ids: dict[tuple[int, str], int] = {}

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, busy_timeout_s: float = 5.0, migrate: bool = True) -> DefectStore:
        """Connect to `url`, creating or migrating the schema to the newest revision.

        `busy_timeout_s` is how long a write waits for a lock held by another connection before
        `StoreUnavailable` (reason `locked`) is raised.
        """
        engine = _create_engine(url, busy_timeout_s)
        store = cls(engine, url)
        if migrate:
            with store._guard():
                store._migrate()
        return store

    def _migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location", _migrations_dir())
        with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two processes opening a fresh database at once: one migrates, one waits.
                conn.execute(text("SELECT pg_advisory_xact_lock(726873001)"))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return safe_url(self._url)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for reports and tests that read with their own queries."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> DefectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn driver errors that mean "not now" into `StoreUnavailable` naming the database."""
        try:
            yield
        except OperationalError as exc:
            detail = str(exc.orig) if exc.orig is not None else str(exc)
            raise StoreUnavailable(self._url, classify(detail), detail) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(self._url, "unreachable", str(exc.orig)) from exc
            raise

    # -- writing -----------------------------------------------------------------------------

    def register_model_version(self, line: str, version: str, sha256: str | None = None) -> None:
        """Record a line model version and its weights' sha256 (idempotent; fills in a hash)."""
        validate_line_name(line)
        with self._guard(), Session(self._writer) as s, s.begin():
            line_id = self._line_id(s, line, create=True)
            row = s.scalars(
                select(ModelVersion).where(
                    ModelVersion.line_id == line_id, ModelVersion.version == version
                )
            ).one_or_none()
            if row is None:
                s.add(ModelVersion(line_id=line_id, version=version, sha256=sha256, created=_now()))
            elif sha256 and row.sha256 != sha256:
                if row.sha256:
                    msg = (
                        f"line {line!r} model version {version!r} is logged with sha256 "
                        f"{row.sha256}, not {sha256}: a version must never change"
                    )
                    raise StoreError(msg)
                row.sha256 = sha256

    def add_inspections(self, records: Sequence[InspectionRecord]) -> list[int]:
        """Write inspections and their defects in one transaction; returns their ids in order.

        A part already in the log (same line and part_id) is skipped and its stored id returned.
        """
        for r in records:
            self._validate(r)
        if not records:
            return []
        with self._guard(), self._lock:
            try:
                return self._insert(records)
            except IntegrityError as exc:
                msg = (
                    f"defect log {self.url}: another writer added the same parts at the same "
                    f"time ({exc.orig}); nothing of this batch was written"
                )
                raise StoreError(msg) from exc

    def _validate(self, r: InspectionRecord) -> None:
        validate_line_name(r.line)
        if not r.part_id:
            msg = f"line {r.line!r}: an inspection needs a non-empty part_id"
            raise ValueError(msg)
        if r.verdict not in VERDICTS:
            msg = f"part {r.part_id!r}: verdict {r.verdict!r} is not one of {', '.join(VERDICTS)}"
            raise ValueError(msg)
        to_db_time(r.timestamp, f"part {r.part_id!r}: timestamp")
        _check_box(r.box, r.part_id)

    def _insert(self, records: Sequence[InspectionRecord]) -> list[int]:
        with Session(self._writer) as s, s.begin():
            line_ids = {
                name: self._line_id(s, name, create=True) for name in {r.line for r in records}
            }
            version_ids = {
                key: self._version_id(s, key[0], key[1])
                for key in {(line_ids[r.line], r.model_version) for r in records}
            }
            existing = self._existing_ids(s, [(line_ids[r.line], r.part_id) for r in records])
            new_rows: list[dict[str, Any]] = []
            new_records: list[InspectionRecord] = []
            # Each record's id: a stored id, or ("new", n) for the n-th row inserted now.
            slots: list[int | tuple[str, int]] = []
            batch: dict[tuple[int, str], int] = {}
            for r in records:
                key = (line_ids[r.line], r.part_id)
                if key in existing:
                    slots.append(existing[key])
                elif key in batch:  # a duplicate within the batch keeps the first one
                    slots.append(("new", batch[key]))
                else:
                    batch[key] = len(new_rows)
                    slots.append(("new", len(new_rows)))
                    new_rows.append(self._row(r, key[0], version_ids[(key[0], r.model_version)]))
                    new_records.append(r)
            new_ids: list[int] = []
            if new_rows:
                stmt = insert(Inspection).returning(Inspection.id, sort_by_parameter_order=True)
                new_ids = list(s.scalars(stmt, new_rows))
                defects = [
                    d for r, i in zip(new_records, new_ids, strict=True) for d in _defects(r, i)
                ]
                if defects:
                    s.execute(insert(Defect), defects)
            out = [x if isinstance(x, int) else new_ids[x[1]] for x in slots]
        # Cached only after the commit, so a rolled-back batch leaves no stale ids behind.
        self._line_ids.update(line_ids)
        self._version_ids.update(version_ids)
        return out

    @staticmethod
    def _row(r: InspectionRecord, line_id: int, version_id: int) -> dict[str, Any]:
        box = _check_box(r.box, r.part_id)
        return {
            "line_id": line_id,
            "model_version_id": version_id,
            "part_id": r.part_id,
            "timestamp": to_db_time(r.timestamp, "timestamp"),
            "verdict": r.verdict,
            "defect_class": r.defect_class,
            "defect_score": r.defect_score,
            "anomaly_score": r.anomaly_score,
            "class_probs": {k: float(v) for k, v in r.class_probs.items()},
            "fault_reason": r.fault_reason,
            "latency_ms": r.latency_ms,
            "box_x0": box[0] if box else None,
            "box_y0": box[1] if box else None,
            "box_x1": box[2] if box else None,
            "box_y1": box[3] if box else None,
            "snapshot_path": r.snapshot_path,
            "label": r.label,
            "effective_verdict": r.verdict,
            "effective_class": r.defect_class,
            "last_action": None,
            "last_operator": None,
            "last_note": None,
        }

    def _line_id(self, s: Session, name: str, *, create: bool) -> int:
        cached = self._line_ids.get(name)
        if cached is not None:
            return cached
        found = s.scalar(select(Line.id).where(Line.name == name))
        if found is not None:
            return found
        if not create:
            msg = f"line {name!r} is not in the defect log {self.url}"
            raise KeyError(msg)
        line = Line(name=name, created=_now())
        s.add(line)
        s.flush()
        return line.id

    def _version_id(self, s: Session, line_id: int, version: str) -> int:
        cached = self._version_ids.get((line_id, version))
        if cached is not None:
            return cached
        found = s.scalar(
            select(ModelVersion.id).where(
                ModelVersion.line_id == line_id, ModelVersion.version == version
            )
        )
        if found is not None:
            return found
        row = ModelVersion(line_id=line_id, version=version, sha256=None, created=_now())
        s.add(row)
        s.flush()
        return row.id

    @staticmethod
    def _existing_ids(s: Session, keys: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
        by_line: dict[int, list[str]] = {}
        for line_id, part in keys:
            by_line.setdefault(line_id, []).append(part)
        found: dict[tuple[int, str], int] = {}
        for line_id, parts in by_line.items():
            for i in range(0, len(parts), _IN_CHUNK):
                chunk = parts[i : i + _IN_CHUNK]
                rows = s.execute(
                    select(Inspection.part_id, Inspection.id).where(
                        Inspection.line_id == line_id, Inspection.part_id.in_(chunk)
                    )
                )
                found.update({(line_id, p): i for p, i in rows})
        return found

    def add_operator_action(
        self,
        inspection_id: int,
        action: str,
        operator: str,
        note: str = "",
        new_class: str | None = None,
    ) -> OperatorActionRow:
        """Record an operator's `confirm`, `false_alarm` or `relabel`; update the effective label.

        `false_alarm` makes the part PASS (refused on a part that already passed); `relabel`
        needs `new_class` and makes the part FAIL with that class; `confirm` keeps the machine's
        call. The latest action decides the effective label.
        """
        if action not in OPERATOR_ACTIONS:
            msg = f"operator action {action!r} is not one of {', '.join(OPERATOR_ACTIONS)}"
            raise ValueError(msg)
        if not operator.strip():
            msg = "an operator action needs the operator's name"
            raise ValueError(msg)
        if action == "relabel" and not (new_class and new_class.strip()):
            msg = "a relabel needs new_class (the defect class the operator sees)"
            raise ValueError(msg)
        if action != "relabel" and new_class is not None:
            msg = f"new_class {new_class!r} is only for a relabel, not for {action!r}"
            raise ValueError(msg)
        with self._guard(), Session(self._writer) as s, s.begin():
            insp = s.get(Inspection, inspection_id)
            if insp is None:
                msg = f"no inspection with id {inspection_id} in the defect log {self.url}"
                raise KeyError(msg)
            if action == "false_alarm" and insp.verdict == "PASS":
                msg = f"inspection {inspection_id} passed; there is no alarm to call false"
                raise ValueError(msg)
            previous = insp.effective_class
            if action == "confirm":
                insp.effective_verdict, insp.effective_class = insp.verdict, insp.defect_class
            elif action == "false_alarm":
                insp.effective_verdict, insp.effective_class = "PASS", None
            else:
                insp.effective_verdict, insp.effective_class = "FAIL", new_class
            insp.last_action, insp.last_operator, insp.last_note = action, operator, note
            row = OperatorAction(
                inspection_id=inspection_id,
                action=action,
                operator=operator,
                note=note,
                new_class=new_class,
                previous_class=previous,
                created=_now(),
            )
            s.add(row)
            s.flush()
            return _action_row(row)

    # -- reading -----------------------------------------------------------------------------

    def seen_part_ids(self, line: str) -> set[str]:
        """Every part_id of `line` already in the log (empty for a line never seen)."""
        with self._guard(), Session(self._engine) as s:
            stmt = select(Inspection.part_id).join(Line).where(Line.name == line)
            return set(s.scalars(stmt))

    def first_scores(self, line: str, version: str, limit: int) -> list[tuple[float, bool]]:
        """The defect score of each of the first `limit` parts `version` of `line` decided, and
        whether it was rejected (FAIL); oldest first, FAULT parts (no score) left out: the
        reference `inspect_app.drift` compares with."""
        stmt = (
            select(Inspection.defect_score, Inspection.verdict)
            .join(Line, Inspection.line_id == Line.id)
            .join(ModelVersion, Inspection.model_version_id == ModelVersion.id)
            .where(
                Line.name == line,
                ModelVersion.version == version,
                Inspection.verdict != "FAULT",
                Inspection.defect_score.is_not(None),
            )
            .order_by(Inspection.id)
            .limit(limit)
        )
        with self._guard(), Session(self._engine) as s:
            return [
                (float(score), verdict == "FAIL")
                for score, verdict in s.execute(stmt)
                if score is not None
            ]

    def lines(self) -> list[str]:
        """The names of all lines in the log, sorted."""
        with self._guard(), Session(self._engine) as s:
            return sorted(s.scalars(select(Line.name)))

    def model_versions(self, line: str | None = None) -> list[ModelVersionRow]:
        """The model versions the log has seen, oldest first."""
        stmt = select(Line.name, ModelVersion).join(Line, ModelVersion.line_id == Line.id)
        if line is not None:
            stmt = stmt.where(Line.name == line)
        with self._guard(), Session(self._engine) as s:
            return [
                ModelVersionRow(name, mv.version, mv.sha256, from_db_time(mv.created))
                for name, mv in s.execute(stmt.order_by(ModelVersion.id))
            ]

    def inspections(
        self,
        line: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        verdict: str | None = None,
        defect_class: str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        effective: bool = False,
        to_check: bool = False,
    ) -> list[InspectionRow]:
        """A page of inspections, newest first, filtered.

        `since` is inclusive and `until` exclusive (aware datetimes). `verdict` and
        `defect_class` match the machine's call, or the label after overrides with
        `effective=True`. `to_check`: only passed parts picked for a check (`serve
        --audit-every`: a snapshot kept) that no operator has acted on yet.
        """
        if limit < 0 or offset < 0:
            msg = f"limit {limit} and offset {offset} must be 0 or more"
            raise ValueError(msg)
        stmt = _rows().where(
            *_conditions(line, since, until, verdict, defect_class, effective, to_check)
        )
        stmt = stmt.order_by(Inspection.timestamp.desc(), Inspection.id.desc())
        stmt = stmt.limit(limit).offset(offset)
        with self._guard(), Session(self._engine) as s:
            return [_inspection_row(i, name, v) for i, name, v in s.execute(stmt)]

    def iter_inspections(
        self,
        line: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: int = 2000,
        *,
        versions: Collection[str] | None = None,
        acted_on: bool = False,
    ) -> Iterator[InspectionRow]:
        """Every inspection matching (as `inspections` filters them), oldest logged first, read
        `page` rows at a time after the last id read: no OFFSET, so a shift's million parts
        cost one pass, and rows logged meanwhile come at the end instead of shifting the pages.
        `versions`: only parts those model versions decided; `acted_on`: only parts an operator
        acted on (both filtered in the database, not row by row here)."""
        if page < 1:
            msg = f"page must be at least 1, got {page}"
            raise ValueError(msg)
        last = 0
        where = [
            *_conditions(line, since, until, None, None, False),
            *_log_conditions(versions, acted_on),
        ]
        while True:
            stmt = _rows().where(*where, Inspection.id > last).order_by(Inspection.id).limit(page)
            with self._guard(), Session(self._engine) as s:
                rows = [_inspection_row(i, name, v) for i, name, v in s.execute(stmt)]
            yield from rows
            if len(rows) < page:
                return
            last = rows[-1].id

    def count(
        self,
        line: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        verdict: str | None = None,
        defect_class: str | None = None,
        *,
        effective: bool = False,
        to_check: bool = False,
        versions: Collection[str] | None = None,
        acted_on: bool = False,
    ) -> int:
        """How many inspections match the same filters as `inspections` (and `versions`,
        `acted_on` as `iter_inspections` reads them)."""
        stmt = select(func.count(Inspection.id)).join(Line, Inspection.line_id == Line.id)
        if versions is not None:
            stmt = stmt.outerjoin(ModelVersion, Inspection.model_version_id == ModelVersion.id)
        stmt = stmt.where(
            *_conditions(line, since, until, verdict, defect_class, effective, to_check),
            *_log_conditions(versions, acted_on),
        )
        with self._guard(), Session(self._engine) as s:
            return int(s.scalar(stmt) or 0)

    def inspection(self, inspection_id: int) -> InspectionRow:
        """One inspection by id (KeyError when there is none)."""
        stmt = _rows().where(Inspection.id == inspection_id)
        with self._guard(), Session(self._engine) as s:
            found = s.execute(stmt).one_or_none()
        if found is None:
            msg = f"no inspection with id {inspection_id} in the defect log {self.url}"
            raise KeyError(msg)
        return _inspection_row(*found)

    def defects(self, inspection_id: int) -> list[DefectRow]:
        """The defects found on one inspected part."""
        stmt = select(Defect).where(Defect.inspection_id == inspection_id).order_by(Defect.id)
        with self._guard(), Session(self._engine) as s:
            return [
                DefectRow(
                    d.id, d.inspection_id, d.defect_class, d.score, _box(d.x0, d.y0, d.x1, d.y1)
                )
                for d in s.scalars(stmt)
            ]

    def operator_actions(self, inspection_id: int | None = None) -> list[OperatorActionRow]:
        """Operator actions, oldest first (all, or those on one inspection)."""
        stmt = select(OperatorAction).order_by(OperatorAction.id)
        if inspection_id is not None:
            stmt = stmt.where(OperatorAction.inspection_id == inspection_id)
        with self._guard(), Session(self._engine) as s:
            return [_action_row(a) for a in s.scalars(stmt)]

    def integrity_problems(self) -> list[str]:
        """SQLite's `PRAGMA integrity_check` findings (empty when sound; always empty elsewhere)."""
        if self._engine.dialect.name != "sqlite":
            return []
        with self._guard(), self._engine.connect() as conn:
            found = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check")]
        return [] if found == ["ok"] else found


def _rows() -> Select[Inspection, str, str]:
    """Inspections with their line's name and model version: what `_inspection_row` reads."""
    return (
        select(Inspection, Line.name, ModelVersion.version)
        .join(Line, Inspection.line_id == Line.id)
        .outerjoin(ModelVersion, Inspection.model_version_id == ModelVersion.id)
    )


def _conditions(
    line: str | None,
    since: datetime | None,
    until: datetime | None,
    verdict: str | None,
    defect_class: str | None,
    effective: bool,
    to_check: bool = False,
) -> list[ColumnElement[bool]]:
    """The WHERE terms shared by `inspections` and `count` (the query joins `Line`)."""
    found: list[ColumnElement[bool]] = []
    if line is not None:
        found.append(Line.name == line)
    if since is not None:
        found.append(Inspection.timestamp >= to_db_time(since, "since"))
    if until is not None:
        found.append(Inspection.timestamp < to_db_time(until, "until"))
    if verdict is not None:
        if verdict not in VERDICTS:
            msg = f"verdict filter {verdict!r} is not one of {', '.join(VERDICTS)}"
            raise ValueError(msg)
        v_col = Inspection.effective_verdict if effective else Inspection.verdict
        found.append(v_col == verdict)
    if defect_class is not None:
        c_col = Inspection.effective_class if effective else Inspection.defect_class
        found.append(c_col == defect_class)
    if to_check:  # picked for a check and not yet checked (`InspectionRow.to_check`)
        found += [
            Inspection.verdict == "PASS",
            Inspection.snapshot_path.is_not(None),
            Inspection.last_action.is_(None),
        ]
    return found


def _log_conditions(versions: Collection[str] | None, acted_on: bool) -> list[ColumnElement[bool]]:
    """WHERE terms for reading the log back (the query joins `ModelVersion`): the parts these
    model versions decided, the parts an operator acted on."""
    found: list[ColumnElement[bool]] = []
    if versions is not None:
        found.append(ModelVersion.version.in_(sorted(versions)))
    if acted_on:
        found.append(Inspection.last_action.is_not(None))
    return found


def _defects(r: InspectionRecord, inspection_id: int) -> list[dict[str, Any]]:
    found = list(r.defects)
    if not found and r.verdict == "FAIL" and r.defect_class:
        found = [DefectRecord(r.defect_class, r.defect_score, r.box)]
    rows = []
    for d in found:
        box = _check_box(d.box, r.part_id)
        rows.append(
            {
                "inspection_id": inspection_id,
                "defect_class": d.defect_class,
                "score": d.score,
                "x0": box[0] if box else None,
                "y0": box[1] if box else None,
                "x1": box[2] if box else None,
                "y1": box[3] if box else None,
            }
        )
    return rows


def _inspection_row(i: Inspection, line: str, version: str | None) -> InspectionRow:
    return InspectionRow(
        id=i.id,
        line=line,
        model_version=version,
        part_id=i.part_id,
        timestamp=from_db_time(i.timestamp),
        verdict=i.verdict,
        defect_class=i.defect_class,
        defect_score=i.defect_score,
        anomaly_score=i.anomaly_score,
        class_probs=dict(i.class_probs or {}),
        fault_reason=i.fault_reason,
        latency_ms=i.latency_ms,
        box=_box(i.box_x0, i.box_y0, i.box_x1, i.box_y1),
        snapshot_path=i.snapshot_path,
        label=i.label,
        effective_verdict=i.effective_verdict,
        effective_class=i.effective_class,
        operator_action=i.last_action,
        operator=i.last_operator,
        operator_note=i.last_note,
    )


def _action_row(a: OperatorAction) -> OperatorActionRow:
    return OperatorActionRow(
        id=a.id,
        inspection_id=a.inspection_id,
        action=a.action,
        operator=a.operator,
        note=a.note,
        new_class=a.new_class,
        previous_class=a.previous_class,
        created=from_db_time(a.created),
    )


def _create_engine(url: str, busy_timeout_s: float) -> Engine:
    """An engine with the log's connection settings for SQLite or any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout_s)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        ms = int(busy_timeout_s * 1000)
        connect_args = {"options": f"-c lock_timeout={ms}", "connect_timeout": 10}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_engine(url: str, busy_timeout_s: float) -> Engine:
    parsed = make_url(url)
    database = parsed.database or ""
    in_memory = database in {"", ":memory:"}
    if in_memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        path = Path(database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"defect log {path}: cannot create its folder {path.parent} ({exc})"
            raise StoreError(msg) from exc
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN, so DDL is transactional too.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine
