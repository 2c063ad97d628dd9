"""The error every reader raises for bad input: it names the file and, where known, the row."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data. `str()` reads `<file>, row <n>: <problem>` so an operator can find it."""

    def __init__(self, problem: str, path: str | Path | None = None, row: int | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.row = row
        where = self.path or "<input>"
        if row is not None:
            where = f"{where}, row {row}"
        super().__init__(f"{where}: {problem}")
