"""Reports from a known defect log: every format's numbers checked against the store."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from pypdf import PdfReader

from inspect_app.cli import main
from inspect_app.report import ReportQuery, load_report, parse_time, plant_zone, write_report
from inspect_app.report.html_report import render_html
from inspect_app.store import DefectStore, InspectionRecord

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)  # 07:00 in Berlin
BERLIN = ZoneInfo("Europe/Berlin")
EVIL_NOTE = "<script>alert('x')</script> & more"
EVIL_OPERATOR = "O'Brien <Co>"
EVIL_CLASS = "<b>crack</b>"


def rec(
    line: str, part: str, minutes: float, verdict: str = "PASS", **kw: object
) -> InspectionRecord:
    fields: dict[str, object] = {
        "line": line,
        "model_version": "v1",
        "part_id": part,
        "timestamp": T0 + timedelta(minutes=minutes),
        "verdict": verdict,
        "defect_score": 0.1,
    }
    fields.update(kw)
    return InspectionRecord(**fields)  # type: ignore[arg-type]


def bad(line: str, part: str, minutes: float, cls: str, s: float, **kw: object) -> InspectionRecord:
    return rec(line, part, minutes, "FAIL", defect_class=cls, defect_score=s, **kw)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[tuple[DefectStore, Path]]:
    """27 parts on two lines over two hours, with overrides and one snapshot on disk."""
    snap = tmp_path / "snapshots" / "p1-dent.png"
    snap.parent.mkdir()
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 20:40] = (0, 0, 255)
    cv2.imwrite(str(snap), image)
    records = [rec("press-1", f"p1-ok{i}", i) for i in range(10)]
    records += [
        bad("press-1", "p1-s1", 10, "scratch", 0.9),
        bad("press-1", "p1-s2", 11, "scratch", 0.8),
        bad("press-1", "p1-s3", 12, "scratch", 0.7, box=(0.1, 0.1, 0.2, 0.2)),
        bad("press-1", "p1-dent", 13, "dent", 0.95, snapshot_path="snapshots/p1-dent.png"),
        rec("press-1", "p1-fault", 14, "FAULT", defect_score=None, fault_reason="camera timeout"),
    ]
    records += [rec("press-1", f"p1-v2ok{i}", 60 + i, model_version="v2") for i in range(5)]
    records += [
        bad("press-1", f"p1-v2d{i}", 70 + i, "dent", 0.6, model_version="v2") for i in range(2)
    ]
    records += [rec("press-2", f"p2-ok{i}", 20 + i) for i in range(4)]
    records += [bad("press-2", "p2-c", 30, EVIL_CLASS, 0.85)]
    store = DefectStore.open(f"sqlite:///{tmp_path / 'inspect.db'}")
    ids = dict(zip([r.part_id for r in records], store.add_inspections(records), strict=True))
    store.add_operator_action(ids["p1-s1"], "false_alarm", EVIL_OPERATOR, note=EVIL_NOTE)
    store.add_operator_action(
        ids["p1-s2"], "relabel", "Ana", note="=HYPERLINK(1)", new_class="dent"
    )
    try:
        yield store, tmp_path
    finally:
        store.close()


def query(**kw: object) -> ReportQuery:
    return ReportQuery(tz=BERLIN, tz_name="Europe/Berlin", **kw)  # type: ignore[arg-type]


def test_report_numbers_match_the_store(log: tuple[DefectStore, Path]) -> None:
    store, home = log
    data = load_report(store, query(), (home,))
    assert data.totals.parts == store.count() == 27
    assert data.totals.passed == store.count(verdict="PASS", effective=True) == 20
    assert data.totals.failed == store.count(verdict="FAIL", effective=True) == 6
    assert data.totals.faults == store.count(verdict="FAULT") == 1
    assert data.machine.failed == store.count(verdict="FAIL") == 7
    assert data.fails_by_class == [("dent", 4), (EVIL_CLASS, 1), ("scratch", 1)]
    assert [(g.name, g.parts, g.failed) for g in data.by_line] == [
        ("press-1", 22, 5),
        ("press-2", 5, 1),
    ]
    assert [(g.name, g.parts) for g in data.by_version] == [
        ("press-1 / v1", 15),
        ("press-1 / v2", 7),
        ("press-2 / v1", 5),
    ]
    # 06:00 and 07:00 UTC are 07:00 and 08:00 in Berlin.
    assert [(h.start.hour, h.parts, h.failed) for h in data.hourly] == [(7, 20, 4), (8, 7, 2)]
    assert (data.false_alarms, data.relabels, data.confirms) == (1, 1, 0)
    assert (data.passes_checked, data.escapes) == (0, 0)  # both corrections were on FAILs
    assert data.corrections == [("scratch", "dent", 1)]
    assert data.worst[0].part_id == "p1-dent"
    assert data.worst[0].snapshot == home / "snapshots" / "p1-dent.png"
    assert [w.part_id for w in data.worst][:3] == [
        "p1-dent",
        "p2-c",
        "p1-s2",
    ]  # s1 was a false alarm
    assert data.defects == 7
    assert data.first.utcoffset() == timedelta(hours=1)


def test_line_and_time_filters(log: tuple[DefectStore, Path]) -> None:
    store, _ = log
    one = load_report(store, query(line="press-2"))
    assert one.totals.parts == store.count(line="press-2") == 5
    since, until = T0 + timedelta(minutes=60), T0 + timedelta(minutes=72)
    window = load_report(store, query(since=since, until=until))
    assert window.totals.parts == store.count(since=since, until=until) == 7
    assert window.totals.failed == 2  # minutes 70 and 71; until (72) is exclusive
    assert window.by_version[0].name == "press-1 / v2"


def test_csv_has_every_inspection_and_defect(log: tuple[DefectStore, Path]) -> None:
    store, home = log
    out = home / "out" / "report.csv"
    outcome = write_report(store, "csv", out, query())
    assert outcome.files == (out, home / "out" / "report_defects.csv")
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == store.count() == outcome.inspections
    by_part = {r["part_id"]: r for r in rows}
    stored = {r.part_id: r for r in store.inspections(limit=100)}
    for part, row in by_part.items():
        assert row["verdict"] == stored[part].verdict
        assert row["effective_verdict"] == stored[part].effective_verdict
        assert row["model_version"] == stored[part].model_version
    assert by_part["p1-s1"]["operator_action"] == "false_alarm"
    assert by_part["p1-s1"]["operator_note"] == EVIL_NOTE
    assert by_part["p1-s2"]["operator_note"] == "'=HYPERLINK(1)"  # not a live formula
    assert by_part["p1-ok0"]["time"] == "2026-03-02T07:00:00.000+01:00"
    with outcome.files[1].open(encoding="utf-8") as f:
        defects = list(csv.DictReader(f))
    assert len(defects) == 7
    assert sum(len(store.defects(r.id)) for r in stored.values()) == 7
    s3 = next(d for d in defects if d["part_id"] == "p1-s3")
    assert (s3["defect_class"], float(s3["x1"])) == ("scratch", 0.2)


def test_html_is_self_contained_and_escapes_data(log: tuple[DefectStore, Path]) -> None:
    store, home = log
    out = home / "report.html"
    write_report(store, "html", out, query(), (home,))
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "O&#x27;Brien &lt;Co&gt;" in page
    assert "&lt;b&gt;crack&lt;/b&gt;" in page and "<b>crack" not in page
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)
    assert page.count('src="data:image/png;base64,') == 3  # Pareto, trend, one snapshot
    assert "Europe/Berlin" in page
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"parts\s*27", text)
    assert "74.07 %" in text  # yield 20 / 27
    assert "2026-03-02 07:00:00 CET" in text
    assert "Passed parts checked by operators: none" in text  # no audit: said, not hidden


def test_passed_parts_the_operators_checked_give_the_escapes(tmp_path: Path) -> None:
    """An audit sample of passed parts (`serve --audit-every`) or a defect found downstream:
    the report says how many passed parts were checked and how many were defective after all."""
    store = DefectStore.open(f"sqlite:///{tmp_path / 'inspect.db'}")
    try:
        records = [rec("press-1", f"ok{i}", i) for i in range(4)]
        records += [bad("press-1", "f1", 5, "dent", 0.9)]
        ids = dict(zip([r.part_id for r in records], store.add_inspections(records), strict=True))
        store.add_operator_action(ids["ok0"], "confirm", "Ana")  # checked: good
        store.add_operator_action(ids["ok1"], "relabel", "Ana", new_class="dent")  # an escape
        store.add_operator_action(ids["ok2"], "confirm", "Ana")  # checked twice: counted once
        store.add_operator_action(ids["ok2"], "confirm", "Bo")
        store.add_operator_action(ids["f1"], "false_alarm", "Ana")  # a reject: not a pass
        data = load_report(store, query())
        assert (data.passes_checked, data.escapes) == (3, 1)
        out = tmp_path / "report.html"
        write_report(store, "html", out, query())
        text = re.sub(r"<[^>]+>", " ", out.read_text(encoding="utf-8"))
        assert "Passed parts checked by operators: 3, of which 1 defective (33.33 %: escapes)" in (
            text
        )
    finally:
        store.close()


def test_pdf_says_the_same_numbers(log: tuple[DefectStore, Path]) -> None:
    store, home = log
    out = home / "report.pdf"
    write_report(store, "pdf", out, query(), (home,))
    reader = PdfReader(out)
    text = "\n".join(page.extract_text() for page in reader.pages)
    flat = " ".join(text.split())
    assert "after operator overrides 27 20 6 1 74.07 % 22.22 % 3.70 %" in flat
    assert "machine verdicts 27 19 7 1 70.37 % 25.93 % 3.70 %" in flat
    assert "dent 4 66.67 %" in flat
    assert EVIL_CLASS in flat  # printed as text, not interpreted
    # The note is printed as text (reportlab may wrap it inside the word).
    assert "<script>alert('x')</script>&more" in flat.replace(" ", "")
    assert "Europe/Berlin" in flat
    assert "press-1 22 16 5 1 72.73 %" in flat
    assert "False alarms: 1" in flat


def _run(*argv: str) -> int:
    return main(list(argv))


@pytest.mark.parametrize("fmt", ["csv", "html", "pdf"])
def test_command_writes_each_format(
    log: tuple[DefectStore, Path], fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, home = log
    out = home / f"r.{fmt}"
    url = f"sqlite:///{home / 'inspect.db'}"
    rc = _run(
        "report",
        "--home",
        str(home),
        "--db",
        url,
        "--format",
        fmt,
        "--out",
        str(out),
        "--tz",
        "Europe/Berlin",
        "--line",
        "press-1",
        "--since",
        "2026-03-02T07:30",
    )
    assert rc == 0
    assert out.stat().st_size > 0
    assert "report of 7 inspections" in capsys.readouterr().out  # minutes 60..71 of press-1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--line", "nope"], "line 'nope' is not in the defect log"),
        (["--since", "2030-01-01"], "no inspections of any line"),
        (["--line", "press-2", "--until", "2020-01-01"], "no inspections of line 'press-2'"),
    ],
)
def test_empty_ranges_and_unknown_lines_write_nothing(
    log: tuple[DefectStore, Path],
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, home = log
    for fmt in ("csv", "html", "pdf"):
        out = home / f"empty.{fmt}"
        url = f"sqlite:///{home / 'inspect.db'}"
        rc = _run("report", "--db", url, "--format", fmt, "--out", str(out), *extra)
        assert rc == 1
        assert message in capsys.readouterr().err
        assert not out.exists()
        assert not (home / "empty_defects.csv").exists()
    assert not list(home.glob(".empty*"))  # no temporary files left behind


def test_missing_database_and_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    assert _run("report", "--home", str(tmp_path), "--format", "html", "--out", str(out)) == 1
    assert "no defect log at" in capsys.readouterr().err
    (tmp_path / "inspect.db").touch()
    assert (
        _run(
            "report",
            "--home",
            str(tmp_path),
            "--format",
            "html",
            "--out",
            str(out),
            "--tz",
            "Mars/Olympus",
        )
        == 2
    )
    assert "time zone 'Mars/Olympus' is unknown" in capsys.readouterr().err
    assert (
        _run(
            "report",
            "--home",
            str(tmp_path),
            "--format",
            "html",
            "--out",
            str(out),
            "--since",
            "yesterday",
        )
        == 2
    )
    assert "time 'yesterday' is not understood" in capsys.readouterr().err
    assert not out.exists()


def test_parse_time_and_zone() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    assert parse_time("24h", BERLIN, now=now) == now - timedelta(hours=24)
    assert parse_time("2026-03-02", BERLIN) == datetime(2026, 3, 2, tzinfo=BERLIN)
    assert parse_time("2026-03-02T06:00+00:00", BERLIN) == T0
    tz, name = plant_zone("Asia/Kolkata")
    assert name == "Asia/Kolkata" and datetime(2026, 1, 1, tzinfo=tz).utcoffset() == timedelta(
        hours=5, minutes=30
    )
    assert plant_zone(None)[1]  # the machine's zone has a name


def test_render_html_handles_a_log_without_fails(tmp_path: Path) -> None:
    with DefectStore.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        store.add_inspections([rec("press-1", "a", 0), rec("press-1", "b", 1)])
        page = render_html(load_report(store, query()))
    assert "No failed parts in this range." in page
    assert "100.00 %" in page


def test_faults_are_reported_by_cause_with_the_reason_as_logged(tmp_path: Path) -> None:
    """A shift with a frozen camera for a spell, a covered lens and an unreadable file: the
    report says why parts were not inspected, by cause, each with its most frequent reason and
    when it last struck (the reasons come from the functions that make them on the line)."""
    from inspect_app.decision import fault_cause
    from inspect_app.pipeline import DROPPED_FAULT, RepeatWatch, input_problem
    from sensors.sample import Sample, VibrationWindow

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    watch = RepeatWatch()
    watch.check(Sample("cam-1", frame=frame))
    frozen = watch.check(Sample("cam-2", frame=frame.copy()))
    dark = input_problem(Sample("cam-3", frame=np.zeros((8, 8, 3), np.uint8)))
    flat = input_problem(Sample("v-1", vibration=VibrationWindow(np.ones(64, np.float32), 1e3)))
    unreadable = "cam/0004.png: corrupt or truncated PNG: no IEND chunk"
    assert fault_cause(frozen).startswith("frozen feed")
    assert fault_cause(dark).startswith("camera dark, covered")
    assert fault_cause(flat).startswith("vibration sensor disconnected")
    assert fault_cause(DROPPED_FAULT).startswith("dropped")
    assert fault_cause(unreadable).startswith("unreadable")
    assert fault_cause("something new") == "other" and fault_cause(None) == "other"

    def faulted(part: str, minutes: float, reason: str | None) -> InspectionRecord:
        return rec("press-1", part, minutes, "FAULT", defect_score=None, fault_reason=reason)

    records = [rec("press-1", f"ok{i}", i) for i in range(5)]
    records += [faulted(f"frozen{i}", 10 + i, frozen) for i in range(6)]
    records += [faulted("frozen-b", 30, f"{frozen} (again)"), faulted("dark", 20, dark)]
    records += [faulted("file", 21, unreadable)]
    store = DefectStore.open(f"sqlite:///{tmp_path / 'inspect.db'}")
    try:
        store.add_inspections(records)
        data = load_report(store, query())
        assert [(f.cause.split(" ")[0], f.parts) for f in data.faults_by_cause] == [
            ("frozen", 7),
            ("camera", 1),
            ("unreadable,", 1),
        ]
        assert data.faults_by_cause[0].example == frozen  # the most frequent of its reasons
        assert data.faults_by_cause[0].last.minute == 30
        out = tmp_path / "report.html"
        write_report(store, "html", out, query())
        text = re.sub(r"<[^>]+>", " ", out.read_text(encoding="utf-8"))
        assert "Faults by cause" in text and "77.78 %" in text  # 7 of 9
        write_report(store, "pdf", tmp_path / "report.pdf", query())
        flat = " ".join(
            " ".join(p.extract_text() for p in PdfReader(tmp_path / "report.pdf").pages).split()
        )
        assert "Faults by cause" in flat and "77.78 %" in flat
    finally:
        store.close()


def test_a_report_without_faults_has_no_faults_section(log: tuple[DefectStore, Path]) -> None:
    store, home = log
    data = load_report(store, query(), (home,))
    assert [(f.cause, f.parts) for f in data.faults_by_cause] == [
        ("camera lost or timed out", 1)  # the fixture's one FAULT: "camera timeout"
    ]
    store.add_inspections([rec("press-9", "only", 1)])
    assert load_report(store, query(line="press-9")).faults_by_cause == []
    write_report(store, "html", home / "press-9.html", query(line="press-9"))
    assert "Faults by cause" not in (home / "press-9.html").read_text(encoding="utf-8")
