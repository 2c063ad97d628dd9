"""The defect log: SQLAlchemy 2.0 mappings, Alembic migrations and the `DefectStore` API.

Rows leave the store only as the frozen dataclasses of `records`; see docs/internals.md.
"""

from inspect_app.store.errors import StoreError, StoreUnavailable
from inspect_app.store.records import (
    DefectRecord,
    DefectRow,
    InspectionRecord,
    InspectionRow,
    ModelVersionRow,
    OperatorActionRow,
)
from inspect_app.store.store import DefectStore

__all__ = [
    "DefectRecord",
    "DefectRow",
    "DefectStore",
    "InspectionRecord",
    "InspectionRow",
    "ModelVersionRow",
    "OperatorActionRow",
    "StoreError",
    "StoreUnavailable",
]
