"""Plain, frozen rows of the defect log: what the pipeline writes and what readers get back.

No live ORM object ever leaves the store; these dataclasses cross threads and processes freely.
All times are aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Verdict = Literal["PASS", "FAIL", "FAULT"]
VERDICTS: tuple[str, ...] = ("PASS", "FAIL", "FAULT")

OperatorActionKind = Literal["confirm", "false_alarm", "relabel"]
OPERATOR_ACTIONS: tuple[str, ...] = ("confirm", "false_alarm", "relabel")

Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 as fractions (0..1) of the frame."""


@dataclass(frozen=True)
class DefectRecord:
    """One defect found on a part: its class, score and where it is."""

    defect_class: str
    score: float | None = None
    box: Box | None = None


@dataclass(frozen=True)
class InspectionRecord:
    """One inspected part, as the pipeline writes it (see docs/internals.md).

    `defects` lists every defect found; when it is empty and the verdict is FAIL with a
    `defect_class`, the store writes one defect from `defect_class`, `defect_score` and `box`.
    """

    line: str
    model_version: str
    part_id: str
    timestamp: datetime
    verdict: Verdict
    defect_class: str | None = None
    defect_score: float | None = None
    anomaly_score: float | None = None
    class_probs: dict[str, float] = field(default_factory=dict)
    fault_reason: str | None = None
    latency_ms: float | None = None
    box: Box | None = None
    snapshot_path: str | None = None
    label: str | None = None
    defects: tuple[DefectRecord, ...] = ()


@dataclass(frozen=True)
class InspectionRow:
    """One inspection read back from the log, with its effective label after overrides.

    `effective_verdict` / `effective_class` are the machine's verdict and class unless an
    operator overrode them: `false_alarm` makes the part PASS with no class, `relabel` makes it
    FAIL with the operator's class, `confirm` keeps the machine's call. The latest action wins.
    """

    id: int
    line: str
    model_version: str | None
    part_id: str
    timestamp: datetime
    verdict: str
    defect_class: str | None
    defect_score: float | None
    anomaly_score: float | None
    class_probs: dict[str, float]
    fault_reason: str | None
    latency_ms: float | None
    box: Box | None
    snapshot_path: str | None
    label: str | None
    effective_verdict: str
    effective_class: str | None
    operator_action: str | None
    operator: str | None
    operator_note: str | None

    @property
    def to_check(self) -> bool:
        """A passed part picked for an operator's check (`serve --audit-every`: its snapshot
        kept) that no operator has acted on yet: the row form of `inspections(to_check=True)`."""
        return self.verdict == "PASS" and bool(self.snapshot_path) and not self.operator_action


@dataclass(frozen=True)
class DefectRow:
    """One defect read back from the log."""

    id: int
    inspection_id: int
    defect_class: str
    score: float | None
    box: Box | None


@dataclass(frozen=True)
class OperatorActionRow:
    """One operator override read back from the log."""

    id: int
    inspection_id: int
    action: str
    operator: str
    note: str
    new_class: str | None
    previous_class: str | None
    created: datetime


@dataclass(frozen=True)
class ModelVersionRow:
    """A line model version the log has seen."""

    line: str
    version: str
    sha256: str | None
    created: datetime
