"""A locked or full defect log gives `StoreUnavailable` naming the database, and recovers."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from inspect_app.store import DefectStore, InspectionRecord, StoreError, StoreUnavailable
from inspect_app.store.errors import classify, safe_url

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)


def record(part: str, note: str = "") -> InspectionRecord:
    return InspectionRecord(
        line="press-1",
        model_version="v1",
        part_id=part,
        timestamp=T0 + timedelta(seconds=len(part)),
        verdict="FAULT",
        fault_reason=note or None,
    )


def test_locked_sqlite_gives_store_unavailable_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "inspect.db"
    with DefectStore.open(f"sqlite:///{path}", busy_timeout_s=0.2) as store:
        store.add_inspections([record("p1")])
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            start = time.monotonic()
            with pytest.raises(StoreUnavailable) as err:
                store.add_inspections([record("p2")])
            assert time.monotonic() - start < 5
            assert err.value.reason == "locked"
            assert str(path) in str(err.value)
            assert "locked" in str(err.value)
            # Readers are not blocked by a writer in WAL mode.
            assert store.count() == 1
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        store.add_inspections([record("p2")])  # the retry succeeds once the lock is gone
        assert store.seen_part_ids("press-1") == {"p1", "p2"}


def test_full_sqlite_gives_store_unavailable_and_keeps_committed_rows(tmp_path: Path) -> None:
    path = tmp_path / "inspect.db"
    with DefectStore.open(f"sqlite:///{path}") as store:
        store.add_inspections([record("p1")])
        store.engine.dispose()

        @event.listens_for(store.engine, "connect")
        def _small(dbapi_connection: Any, _record: Any) -> None:
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count={pages + 2}")

        big = "x" * 20_000  # several pages per row
        with pytest.raises(StoreUnavailable) as err:
            for i in range(50):
                store.add_inspections([record(f"big{i}", note=big)])
        assert err.value.reason == "full"
        assert str(path) in str(err.value)
        assert "full" in str(err.value)
        written = store.seen_part_ids("press-1")
        assert "p1" in written
        assert store.integrity_problems() == []
    with DefectStore.open(f"sqlite:///{path}") as again:  # no page limit now
        assert again.seen_part_ids("press-1") == written
        again.add_inspections([record("after")])


def test_a_database_path_that_cannot_exist_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="a-file"):
        DefectStore.open(f"sqlite:///{blocker / 'inspect.db'}")


def test_password_is_hidden_and_messages_classified() -> None:
    assert "secret" not in safe_url("postgresql+psycopg://u:secret@db/x")
    err = StoreUnavailable("postgresql+psycopg://u:secret@db/x", "locked", "lock timeout")
    assert "secret" not in str(err)
    assert classify("canceling statement due to lock timeout") == "locked"
    assert classify("could not extend file: No space left on device") == "full"
    assert classify("attempt to write a readonly database") == "read-only"
    assert classify('connection to server at "127.0.0.1", port 1 failed') == "unreachable"


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get("INSPECT_APP_TEST_PG_URL")
    if not base:
        pytest.skip(
            "INSPECT_APP_TEST_PG_URL is not set; start a server with scripts/start_postgres.sh"
        )
    import psycopg

    url = make_url(base)
    name = f"inspect_t_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_locked_postgres_gives_store_unavailable_then_recovers(pg_url: str) -> None:
    import psycopg

    with DefectStore.open(pg_url, busy_timeout_s=0.3) as store:
        store.add_inspections([record("p1")])
        plain = make_url(pg_url).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(plain) as holder:
            holder.execute("LOCK TABLE inspections IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreUnavailable) as err:
                store.add_inspections([record("p2")])
            assert err.value.reason == "locked"
            assert make_url(pg_url).database in str(err.value)
        store.add_inspections([record("p2")])
        assert store.seen_part_ids("press-1") == {"p1", "p2"}


def test_unreachable_postgres_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable) as err:
        DefectStore.open("postgresql+psycopg://nobody@127.0.0.1:9/none")
    assert err.value.reason == "unreachable"
    assert "127.0.0.1:9" in str(err.value)
