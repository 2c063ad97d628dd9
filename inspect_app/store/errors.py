"""Errors of the defect log, each naming the database and the problem.

`StoreUnavailable` means "try again later" (locked, full, unreachable): the pipeline keeps the
parts it could not write, applies back-pressure and retries, instead of crashing in a loop.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url


def safe_url(url: str) -> str:
    """The URL with any password hidden, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class StoreError(RuntimeError):
    """Any error of the defect log."""


class StoreUnavailable(StoreError):
    """The database cannot take writes (or reads) right now; retry later.

    `reason` is one of `locked`, `full`, `read-only`, `unreachable`, `unavailable`.
    """

    def __init__(self, db: str, reason: str, detail: str) -> None:
        self.db = safe_url(db)
        self.reason = reason
        self.detail = detail
        super().__init__(f"defect log {self.db} is {reason}: {detail}")


_REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("locked", ("database is locked", "database table is locked", "lock timeout", "lock_timeout")),
    ("full", ("database or disk is full", "no space left", "disk full", "diskfull")),
    ("read-only", ("readonly database", "read-only", "read only")),
    (
        "unreachable",
        ("unable to open database", "connection refused", "could not connect", "connection"),
    ),
)


def classify(message: str) -> str:
    """Which kind of unavailability a driver's error message describes."""
    low = message.lower()
    for reason, needles in _REASONS:
        if any(n in low for n in needles):
            return reason
    return "unavailable"
