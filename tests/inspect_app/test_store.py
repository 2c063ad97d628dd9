"""The defect log against SQLite and a real PostgreSQL server (INSPECT_APP_TEST_PG_URL).

Start a server for the postgres half with `eval "$(scripts/start_postgres.sh)"`.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url

from inspect_app.store import DefectRecord, DefectStore, InspectionRecord
from inspect_app.store.schema import Base

PG_ENV = "INSPECT_APP_TEST_PG_URL"
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)


def _fresh_pg_database(base_url: str) -> Iterator[str]:
    """A new, empty database on the test server for one test; dropped afterwards."""
    import psycopg

    url = make_url(base_url)
    name = f"inspect_t_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'inspect.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set; start a server with scripts/start_postgres.sh")
    yield from _fresh_pg_database(base)


@pytest.fixture
def store(db_url: str) -> Iterator[DefectStore]:
    with DefectStore.open(db_url, busy_timeout_s=1.0) as s:
        yield s


def record(part: str, minutes: float = 0.0, **kw: object) -> InspectionRecord:
    fields: dict[str, object] = {
        "line": "press-1",
        "model_version": "v1",
        "part_id": part,
        "timestamp": T0 + timedelta(minutes=minutes),
        "verdict": "PASS",
        "defect_score": 0.1,
        "anomaly_score": 1.5,
        "class_probs": {"scratch": 0.05, "dent": 0.05},
        "latency_ms": 12.5,
    }
    fields.update(kw)
    return InspectionRecord(**fields)  # type: ignore[arg-type]


def fail(part: str, minutes: float, cls: str = "scratch", score: float = 0.9) -> InspectionRecord:
    return record(
        part,
        minutes,
        verdict="FAIL",
        defect_class=cls,
        defect_score=score,
        box=(0.1, 0.2, 0.3, 0.4),
        snapshot_path=f"snapshots/{part}.png",
    )


def test_schema_matches_the_mappings(store: DefectStore) -> None:
    with store.engine.connect() as conn:
        # Alembic's autogenerate sees no difference: the migrations build exactly the mappings.
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    found = sa_inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        columns = {c["name"] for c in found.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    assert "alembic_version" in found.get_table_names()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    with DefectStore.open(f"sqlite:///{tmp_path / 'sub' / 'log.db'}") as store:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert store.integrity_problems() == []


def test_round_trip_as_frozen_rows(store: DefectStore) -> None:
    ids = store.add_inspections([record("p1", 0), fail("p2", 1)])
    assert len(ids) == 2
    rows = store.inspections(line="press-1")
    assert [r.part_id for r in rows] == ["p2", "p1"]  # newest first
    p2 = rows[0]
    assert p2.id == ids[1]
    assert p2.verdict == p2.effective_verdict == "FAIL"
    assert p2.defect_class == p2.effective_class == "scratch"
    assert p2.timestamp == T0 + timedelta(minutes=1)
    assert p2.timestamp.tzinfo is not None
    assert p2.box == pytest.approx((0.1, 0.2, 0.3, 0.4))
    assert p2.model_version == "v1"
    assert p2.class_probs == {"scratch": 0.05, "dent": 0.05}
    with pytest.raises(AttributeError):
        p2.verdict = "PASS"  # type: ignore[misc]
    defects = store.defects(p2.id)
    assert [(d.defect_class, d.score) for d in defects] == [("scratch", 0.9)]
    assert store.defects(ids[0]) == []


def test_several_defects_per_part(store: DefectStore) -> None:
    rec = record(
        "p1",
        verdict="FAIL",
        defect_class="dent",
        defect_score=0.8,
        defects=(DefectRecord("dent", 0.8, (0, 0, 0.5, 0.5)), DefectRecord("scratch", 0.6)),
    )
    (i,) = store.add_inspections([rec])
    assert [(d.defect_class, d.box) for d in store.defects(i)] == [
        ("dent", (0.0, 0.0, 0.5, 0.5)),
        ("scratch", None),
    ]


def test_duplicate_part_is_an_idempotent_skip(store: DefectStore) -> None:
    first = store.add_inspections([record("p1"), record("p2")])
    again = store.add_inspections([fail("p2", 5), record("p3"), record("p3", 9)])
    assert again[0] == first[1]
    assert again[1] == again[2]
    assert store.count() == 3
    assert store.inspection(first[1]).verdict == "PASS"  # the stored row is unchanged
    assert store.seen_part_ids("press-1") == {"p1", "p2", "p3"}
    assert store.seen_part_ids("other") == set()
    # Same part id on another line is another part.
    store.add_inspections([record("p1", line="press-2")])
    assert store.count() == 4
    assert store.lines() == ["press-1", "press-2"]


def test_paged_filtered_queries(store: DefectStore) -> None:
    recs = [record(f"ok{i}", i) for i in range(10)]
    recs += [fail(f"s{i}", 10 + i, "scratch") for i in range(4)]
    recs += [fail(f"d{i}", 20 + i, "dent") for i in range(3)]
    recs += [record("f0", 30, verdict="FAULT", fault_reason="camera timeout", defect_score=None)]
    recs += [record("o0", 31, line="press-2")]
    store.add_inspections(recs)
    assert store.count() == 19
    assert store.count(line="press-1") == 18
    assert store.count(verdict="FAIL") == 7
    assert store.count(verdict="FAULT") == 1
    assert store.count(defect_class="dent") == 3
    window = {"since": T0 + timedelta(minutes=5), "until": T0 + timedelta(minutes=12)}
    assert store.count(**window) == 7  # minutes 5..11, until is exclusive
    page1 = store.inspections(line="press-1", limit=5)
    page2 = store.inspections(line="press-1", limit=5, offset=5)
    assert [r.part_id for r in page1] == ["f0", "d2", "d1", "d0", "s3"]
    assert [r.part_id for r in page2] == ["s2", "s1", "s0", "ok9", "ok8"]
    assert store.inspections(verdict="FAULT")[0].fault_reason == "camera timeout"
    with pytest.raises(ValueError, match="verdict filter 'BAD'"):
        store.count(verdict="BAD")
    with pytest.raises(ValueError, match="no time zone"):
        store.count(since=datetime(2026, 1, 1))


def test_passed_parts_to_check_are_found_until_checked(store: DefectStore) -> None:
    """The console's "PASS to check": passed parts with a snapshot (picked by `serve
    --audit-every`) that no operator has confirmed or relabelled yet."""
    ids = store.add_inspections(
        [
            record("picked1", 1, snapshot_path="snapshots/picked1.jpg"),
            record("picked2", 2, snapshot_path="snapshots/picked2.jpg"),
            record("plain", 3),
            fail("rejected", 4),  # a snapshot, but a FAIL
        ]
    )
    assert store.count(to_check=True) == 2
    store.add_operator_action(ids[0], "confirm", "A. Jones")
    assert [r.part_id for r in store.inspections(to_check=True)] == ["picked2"]
    assert store.count(line="press-1", verdict="PASS", to_check=True) == 1
    assert store.count(line="press-2", to_check=True) == 0


def test_every_inspection_read_in_pages_without_offsets(store: DefectStore) -> None:
    """What calibrate --from-db and adapt --from-db read: all of a line's rows, a page at a
    time; a row logged while they read comes at the end, none is read twice or skipped."""
    store.add_inspections([record(f"p{i}", i) for i in range(7)] + [record("o0", 3, line="x")])
    seen = []
    for row in store.iter_inspections(line="press-1", page=3):
        seen.append(row.part_id)
        if row.part_id == "p1":  # the line goes on logging meanwhile
            store.add_inspections([record("late", 0.5)])
    assert seen == [*(f"p{i}" for i in range(7)), "late"]
    window = store.iter_inspections(
        line="press-1", since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5), page=1
    )
    assert [r.part_id for r in window] == ["p2", "p3", "p4"]
    with pytest.raises(ValueError, match="page must be at least 1"):
        next(store.iter_inspections(page=0))


def test_the_log_is_read_back_by_model_version_and_by_operator_action(
    store: DefectStore,
) -> None:
    """What calibrate --from-db (the parts given versions decided) and adapt --from-db (the
    parts an operator acted on) read, filtered in the database: a shift's million rows are
    not turned into rows here to keep a hundred."""
    rows = [record("a", 0), fail("b", 1), record("c", 2, model_version="v2"), fail("d", 3)]
    rows += [record("n", 4, model_version="v3"), record("x", 5, model_version="v2", line="x")]
    ids = store.add_inspections(rows)
    store.add_operator_action(ids[1], "false_alarm", "Ana")
    store.add_operator_action(ids[2], "relabel", "Ben", new_class="dent")

    def ids_of(**kw: object) -> list[str]:
        return [r.part_id for r in store.iter_inspections(line="press-1", page=2, **kw)]  # type: ignore[arg-type]

    assert ids_of(versions=["v1"]) == ["a", "b", "d"]
    assert ids_of(versions=("v1", "v2")) == ["a", "b", "c", "d"]  # not v3's part
    assert ids_of(versions=[]) == []
    assert ids_of(acted_on=True) == ["b", "c"]
    assert ids_of(versions=["v2"], acted_on=True) == ["c"]
    assert store.count(line="press-1", versions=["v1"]) == 3
    assert store.count(line="press-1", versions=["v2"], acted_on=True) == 1
    assert store.count(versions=["v2"]) == 2  # every line


def test_operator_actions_set_the_effective_label(store: DefectStore) -> None:
    a, b, c, d = store.add_inspections(
        [fail("a", 0), fail("b", 1, "dent"), record("c", 2), fail("d", 3)]
    )
    store.add_operator_action(a, "false_alarm", "Ana", note="oil stain, not a scratch")
    store.add_operator_action(b, "relabel", "Ben", new_class="crack")
    store.add_operator_action(c, "relabel", "Ben", note="missed dent", new_class="dent")
    store.add_operator_action(d, "confirm", "Ana")
    got = {r.part_id: r for r in store.inspections(limit=10)}
    assert (got["a"].effective_verdict, got["a"].effective_class) == ("PASS", None)
    assert got["a"].operator == "Ana"
    assert got["a"].operator_note == "oil stain, not a scratch"
    assert (got["b"].effective_verdict, got["b"].effective_class) == ("FAIL", "crack")
    assert (got["c"].effective_verdict, got["c"].effective_class) == ("FAIL", "dent")
    assert (got["d"].effective_verdict, got["d"].operator_action) == ("FAIL", "confirm")
    assert store.count(verdict="FAIL") == 3
    assert store.count(verdict="FAIL", effective=True) == 3  # a off, c on
    assert store.count(defect_class="crack", effective=True) == 1
    actions = store.operator_actions()
    assert [(x.action, x.previous_class, x.new_class) for x in actions] == [
        ("false_alarm", "scratch", None),
        ("relabel", "dent", "crack"),
        ("relabel", None, "dent"),
        ("confirm", "scratch", None),
    ]
    # The latest action wins: confirming after a false alarm restores the machine's call.
    store.add_operator_action(a, "confirm", "Cleo")
    assert store.inspection(a).effective_verdict == "FAIL"


@pytest.mark.parametrize(
    ("action", "kw", "match"),
    [
        ("approve", {}, "not one of"),
        ("relabel", {}, "needs new_class"),
        ("confirm", {"new_class": "dent"}, "only for a relabel"),
        ("confirm", {"operator": " "}, "operator's name"),
    ],
)
def test_bad_operator_actions_are_refused(
    store: DefectStore, action: str, kw: dict[str, str], match: str
) -> None:
    (i,) = store.add_inspections([fail("a", 0)])
    args = {"operator": "Ana", **kw}
    with pytest.raises(ValueError, match=match):
        store.add_operator_action(i, action, **args)


def test_false_alarm_on_a_pass_and_unknown_ids_are_refused(store: DefectStore) -> None:
    (i,) = store.add_inspections([record("a")])
    with pytest.raises(ValueError, match="no alarm"):
        store.add_operator_action(i, "false_alarm", "Ana")
    with pytest.raises(KeyError, match="no inspection with id 999"):
        store.add_operator_action(999, "confirm", "Ana")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"verdict": "OK"}, "verdict 'OK'"),
        ({"timestamp": datetime(2026, 1, 1)}, "no time zone"),
        ({"line": "../etc"}, "line name"),
        ({"part_id": ""}, "non-empty part_id"),
        ({"box": (0.1, 0.2)}, "x0, y0, x1, y1"),
    ],
)
def test_bad_records_are_refused_before_writing(
    store: DefectStore, kw: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        store.add_inspections([record("good"), record("bad", **kw)])
    assert store.count() == 0


def test_model_versions(store: DefectStore) -> None:
    store.register_model_version("press-1", "v1", "ab" * 32)
    store.add_inspections([record("p1"), record("p2", model_version="v2")])
    store.register_model_version("press-1", "v2", "cd" * 32)
    versions = store.model_versions("press-1")
    assert [(v.version, v.sha256) for v in versions] == [("v1", "ab" * 32), ("v2", "cd" * 32)]
    with pytest.raises(Exception, match="must never change"):
        store.register_model_version("press-1", "v1", "ef" * 32)


def test_reopening_keeps_rows_and_schema(db_url: str) -> None:
    with DefectStore.open(db_url) as s:
        s.add_inspections([record("p1")])
    with DefectStore.open(db_url) as s:
        assert s.seen_part_ids("press-1") == {"p1"}


def test_writers_on_threads(store: DefectStore) -> None:
    def write(k: int) -> None:
        for j in range(5):
            store.add_inspections([record(f"t{k}-{j}-{n}", j) for n in range(4)])

    threads = [threading.Thread(target=write, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 60
