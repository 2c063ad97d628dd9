"""Write a report file whole or not at all: into a temporary file beside it, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_file(out: Path, mode: str = "wb", **open_kw: object) -> Iterator[IO]:  # type: ignore[type-arg]
    """Open a temporary file beside `out`; on success it replaces `out`, on error it is removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **open_kw) as f:  # type: ignore[call-overload]
            yield f
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_text(out: Path) -> Iterator[IO[str]]:
    """`atomic_file` for UTF-8 text with the newline handling the csv module needs."""
    with atomic_file(out, "w", encoding="utf-8", newline="") as f:
        yield f
