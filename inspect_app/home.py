"""Where line models, the default defect log and snapshots live (`--home`, `INSPECT_APP_HOME`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

HOME_ENV = "INSPECT_APP_HOME"
_LINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def resolve_home(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """`--home` if given, else `$INSPECT_APP_HOME`, else the platform's user data folder."""
    if cli_value:
        home = Path(cli_value)
    elif os.environ.get(HOME_ENV):
        home = Path(os.environ[HOME_ENV])
    else:
        home = Path(platformdirs.user_data_dir("inspect-app", appauthor=False))
    return home.expanduser().resolve()


def validate_line_name(line: str) -> str:
    """A line name is a folder name under HOME/lines: letters, digits, `_`, `-`, `.`; no path."""
    if not _LINE_NAME.match(line) or line in {".", ".."} or ".." in line:
        msg = (
            f"line name {line!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (it becomes a folder under HOME/lines)"
        )
        raise ValueError(msg)
    return line


def line_dir(home: Path, line: str) -> Path:
    """HOME/lines/<line>, refusing any name that would land outside HOME/lines."""
    validate_line_name(line)
    root = (home / "lines").resolve()
    path = (root / line).resolve()
    if path.parent != root:
        msg = f"line name {line!r} would escape {root}"
        raise ValueError(msg)
    return path


def default_db_url(home: Path) -> str:
    """SQLite in HOME, the default defect log."""
    return f"sqlite:///{home / 'inspect.db'}"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite defect-log URL names (None for another database); ValueError naming a
    URL that is not one."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as exc:
        msg = f"--db {url!r} is not a database URL (e.g. sqlite:///path/inspect.db)"
        raise ValueError(msg) from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(parsed.database)
    return None


def no_log_at(path: Path) -> str:
    """What to say when the defect log to read is not there (opening it would create one)."""
    return (
        f"no defect log at {path}; run `inspect-app serve` or `inspect-app demo` first, or give "
        "--db"
    )


def missing_log(url: str) -> str | None:
    """Why a defect log that is only read cannot be (a URL that is not one, a SQLite file that
    is not there: opening it would create an empty log), or None."""
    try:
        path = sqlite_file(url)
    except ValueError as exc:
        return str(exc)
    return None if path is None or path.is_file() else no_log_at(path)
