"""The defect log's tables as typed SQLAlchemy 2.0 mappings.

Every change here needs an Alembic revision in `inspect_app/migrations/versions/`;
`test_schema_matches_the_mappings` (tests/inspect_app/test_store.py) checks that the migrated
schema matches these mappings.
Times are stored as naive UTC (`DateTime` without zone) so SQLite and PostgreSQL agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Base of the defect log's mappings."""


class Line(Base):
    """A production line."""

    __tablename__ = "lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime)


class ModelVersion(Base):
    """A version of a line's model, as it inspected parts."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("line_id", "version", name="uq_model_versions_line"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id"))
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime)


class Inspection(Base):
    """One inspected part; the `effective_*` and `last_*` columns follow the latest override."""

    __tablename__ = "inspections"
    __table_args__ = (
        UniqueConstraint("line_id", "part_id", name="uq_inspections_line_part"),
        Index("ix_inspections_line_time", "line_id", "timestamp"),
        Index("ix_inspections_time", "timestamp"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id"))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    part_id: Mapped[str] = mapped_column(String(128))
    timestamp: Mapped[datetime] = mapped_column(DateTime)
    verdict: Mapped[str] = mapped_column(String(8))
    defect_class: Mapped[str | None] = mapped_column(String(64))
    defect_score: Mapped[float | None] = mapped_column(Float)
    anomaly_score: Mapped[float | None] = mapped_column(Float)
    class_probs: Mapped[dict[str, Any]] = mapped_column(JSON)
    fault_reason: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    box_x0: Mapped[float | None] = mapped_column(Float)
    box_y0: Mapped[float | None] = mapped_column(Float)
    box_x1: Mapped[float | None] = mapped_column(Float)
    box_y1: Mapped[float | None] = mapped_column(Float)
    snapshot_path: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(64))
    effective_verdict: Mapped[str] = mapped_column(String(8))
    effective_class: Mapped[str | None] = mapped_column(String(64))
    last_action: Mapped[str | None] = mapped_column(String(16))
    last_operator: Mapped[str | None] = mapped_column(String(128))
    last_note: Mapped[str | None] = mapped_column(Text)


class Defect(Base):
    """One defect found on an inspected part."""

    __tablename__ = "defects"

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), index=True)
    defect_class: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    x0: Mapped[float | None] = mapped_column(Float)
    y0: Mapped[float | None] = mapped_column(Float)
    x1: Mapped[float | None] = mapped_column(Float)
    y1: Mapped[float | None] = mapped_column(Float)


class OperatorAction(Base):
    """An operator's confirm / false_alarm / relabel on an inspection."""

    __tablename__ = "operator_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text)
    new_class: Mapped[str | None] = mapped_column(String(64))
    previous_class: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime)
