"""A writer killed with SIGKILL loses no committed inspection and leaves a sound SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from inspect_app.store import DefectStore

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timedelta, timezone
    from inspect_app.store import DefectStore, InspectionRecord

    t0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
    with DefectStore.open(sys.argv[1]) as store:
        for batch in range(100000):
            records = [
                InspectionRecord(
                    line="press-1", model_version="v1", part_id=f"b{batch}-{k}",
                    timestamp=t0 + timedelta(seconds=batch), verdict="FAIL",
                    defect_class="scratch", defect_score=0.9, box=(0.1, 0.1, 0.2, 0.2),
                )
                for k in range(20)
            ]
            store.add_inspections(records)
            print(batch, flush=True)  # only after the commit returned
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_mid_write_loses_no_committed_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inspect.db'}"
    DefectStore.open(url).close()  # schema in place before the writer starts
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    committed = -1
    deadline = time.monotonic() + 60
    while committed < 30 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert committed >= 30, "the writer did not get going"
    with DefectStore.open(url) as store:
        assert store.integrity_problems() == []
        seen = store.seen_part_ids("press-1")
        for batch in range(committed + 1):
            assert {f"b{batch}-{k}" for k in range(20)} <= seen, f"batch {batch} lost"
        assert len(seen) % 20 == 0  # a batch is all or nothing
        # Every stored FAIL kept its defect row (the two are one transaction).
        fails = store.count(verdict="FAIL")
        with store.engine.connect() as conn:
            defects = conn.exec_driver_sql("SELECT count(*) FROM defects").scalar()
        assert defects == fails == len(seen)
