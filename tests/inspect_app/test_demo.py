"""The demo's pieces: where the sample line comes from, a fresh demo log, and the run summary
(misses and false rejects against labels; FAULT never counted as a pass)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from inspect_app.cli import build_parser
from inspect_app.commands.demo import fresh_demo_db, next_steps, sample_line
from inspect_app.decision import Verdict, fault
from inspect_app.pipeline import InspectedPart
from inspect_app.runtime import RuntimeStats
from inspect_app.summary import RunTally, summarize, summary_lines, write_summary_html
from sensors.sample import Sample

REPO = Path(__file__).resolve().parents[2]


def test_sample_line_comes_from_the_checkout(tmp_path: Path) -> None:
    folder = sample_line(tmp_path)
    if (REPO / "sample_data" / "demo-line" / "stream" / "labels.csv").is_file():
        assert folder == REPO / "sample_data" / "demo-line"
    assert (folder / "adapt" / "labels.csv").is_file() and (
        folder / "stream" / "labels.csv"
    ).is_file()


def test_fresh_demo_db_starts_empty(tmp_path: Path) -> None:
    (tmp_path / "inspect.db").write_text("old")
    (tmp_path / "inspect.db-wal").write_text("old")
    (tmp_path / "snapshots").mkdir()
    url = fresh_demo_db(tmp_path)
    assert url == f"sqlite:///{tmp_path / 'inspect.db'}"
    assert not (tmp_path / "inspect.db").exists() and not (tmp_path / "snapshots").exists()


def test_summary_against_labels(tmp_path: Path) -> None:
    stats = RuntimeStats()
    tally = RunTally()
    outcomes = [
        ("ok", Verdict("PASS")),
        ("ok", Verdict("PASS")),
        ("ok", Verdict("FAIL", defect_class="crack")),  # false reject
        ("ok", fault("img.png: truncated")),  # reported apart, not a false reject, not a pass
        ("crack", Verdict("FAIL", defect_class="crack")),
        ("crack", Verdict("FAIL", defect_class="dent")),  # caught, wrong class
        ("dent", Verdict("PASS")),  # missed
        (None, Verdict("FAIL", defect_class="dent")),  # unlabeled: in counts, not in rates
    ]
    parts = [
        InspectedPart(Sample(part_id=str(i), label=lab), v) for i, (lab, v) in enumerate(outcomes)
    ]
    stats.record_part_started()
    for p in parts:
        stats.record_latency("total", 0.5)
        for stage, seconds in (("preprocess", 0.004), ("model", 0.02), ("decision", 0.001)):
            stats.record_latency(stage, seconds)
        stats.record_verdict(p.verdict.verdict, p.verdict.defect_class)
    tally.add(parts)
    s = summarize(tally, stats.snapshot(), batch_size=8)
    assert s.parts == 8 and s.verdicts == {"PASS": 3, "FAIL": 4, "FAULT": 1}
    assert s.fails_by_class == {"crack": 2, "dent": 2}
    assert (s.labeled, s.defective, s.missed, s.false_rejects, s.faults_labeled_ok) == (
        7,
        3,
        1,
        1,
        1,
    )
    assert s.miss_rate == 1 / 3 and s.false_reject_rate == 1 / 4 and s.class_accuracy == 1 / 2
    text = "\n".join(summary_lines(s, "l1"))
    assert "FAULT 1" in text and "miss rate 33.3 %" in text and "false-reject rate 25.0 %" in text
    assert (
        "a batch (up to 8 parts) inspected in 25 ms" in text
        and "read to logged: p50 500 ms" in text
    )
    page = write_summary_html(s, "l1", tmp_path / "summary.html", tmp_path / "report.html")
    assert "report.html" in page.read_text() and "crack" in page.read_text()


def test_a_demo_line_that_rejects_many_good_parts_names_the_defects_holding_it_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo teaches its line as `adapt` does, and says why the false-reject rate is high:
    the weakest defective adapt parts and what letting them pass would buy."""
    import inspect_app.teach as teach
    from inspect_app.commands.demo import ensure_line_model

    metrics = {
        "n_defective": 25,
        "weakest_defects": [
            {
                "part_id": "synth-15-000007",
                "label": "crack",
                "defect_score": 0.012,
                "good_at_or_above": 0.6,
            }
        ],
        "miss_tradeoff": [
            {
                "missed": 1,
                "miss_rate": 0.04,
                "false_reject_rate": 0.2,
                "target_miss_rate": 0.04,
            }
        ],
    }

    def taught(false_reject: float) -> object:
        report = SimpleNamespace(
            as_dict=lambda: {"miss_rate": 0.0, "false_reject_rate": false_reject}
        )
        return SimpleNamespace(
            folder=tmp_path / "v1",
            n_parts=50,
            seconds=9.0,
            report=report,
            card=SimpleNamespace(metrics=metrics),
        )

    monkeypatch.setattr(teach, "teach_line", lambda *a, **k: taught(0.62))
    ensure_line_model(tmp_path, tmp_path, readapt=True)
    out = capsys.readouterr().out
    assert "false-reject rate 62.0 %" in out
    assert "demo:   synth-15-000007  crack  0.0120  60.0 % of good parts" in out
    assert "1 of 25 missed (4.0 %): false-reject 20.0 %" in out
    monkeypatch.setattr(teach, "teach_line", lambda *a, **k: taught(0.05))
    ensure_line_model(tmp_path, tmp_path, readapt=True)
    assert "synth-15-000007" not in capsys.readouterr().out  # a line that is ready: no list


def test_next_steps_are_commands_the_cli_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo ends with what to try next on the same HOME: each hint parses as written."""
    monkeypatch.delenv("INSPECT_APP_HOME", raising=False)
    db = f"sqlite:///{tmp_path / 'home' / 'demo' / 'inspect.db'}"
    hints = next_steps(tmp_path / "home", tmp_path / "line", db)
    commands = [h.split() for h in hints if h.split()[0].endswith("inspect-app")]
    assert len(commands) == 4
    for argv in commands:
        args = build_parser().parse_args(argv[1:])
        assert args.home == str(tmp_path / "home")
    calibrate = build_parser().parse_args(commands[2][1:])
    assert calibrate.from_db and calibrate.db == db and calibrate.dry_run  # the demo's own log
    monkeypatch.setenv("INSPECT_APP_HOME", str(tmp_path / "home"))
    assert not any("--home" in h for h in next_steps(tmp_path / "home", tmp_path / "line", db))


def test_next_steps_name_the_program_as_it_can_be_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` runs .venv/bin/inspect-app with the environment not activated: the hints
    then use that path, which works where `inspect-app` alone is not found."""
    import inspect_app.commands.demo as demo

    monkeypatch.setattr(demo.sys, "argv", [".venv/bin/inspect-app", "demo"])
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    assert next_steps(tmp_path, tmp_path, "sqlite://")[1].startswith(
        "  .venv/bin/inspect-app console "
    )
    monkeypatch.setattr(demo.shutil, "which", lambda name: "/usr/bin/inspect-app")
    assert next_steps(tmp_path, tmp_path, "sqlite://")[1].startswith("  inspect-app console ")


def test_the_demo_line_is_taught_again_on_another_backbone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo --backbone tinym` on a HOME whose demo line runs on `tiny` teaches it again on
    `tinym`; the same backbone, or none named, keeps the line as it is."""
    import inspect_app.lines as lines
    import inspect_app.teach as teach
    from inspect_app.commands.demo import ensure_line_model

    taught_on: list[str] = []

    def teach_line(home: Path, line: str, data: Path, options: teach.TeachOptions) -> object:
        taught_on.append(options.backbone_size)
        report = SimpleNamespace(as_dict=lambda: {"miss_rate": 0.0, "false_reject_rate": 0.0})
        card = SimpleNamespace(metrics={})
        return SimpleNamespace(folder=tmp_path, n_parts=50, seconds=1.0, report=report, card=card)

    monkeypatch.setattr(teach, "teach_line", teach_line)
    monkeypatch.setattr(lines, "active_version", lambda home, line: "v1")
    monkeypatch.setattr(
        lines, "read_card", lambda folder: SimpleNamespace(backbone={"size": "tiny"})
    )
    for backbone in (None, "tiny"):
        ensure_line_model(tmp_path, tmp_path, readapt=False, backbone=backbone)
        assert "demo-line v1 is already taught, on tiny" in capsys.readouterr().out
    assert taught_on == []
    ensure_line_model(tmp_path, tmp_path, readapt=False, backbone="tinym")
    out = capsys.readouterr().out
    assert "was taught on tiny, not tinym" in out and "teaching line demo-line on tinym" in out
    assert taught_on == ["tinym"]

    def unreadable(folder: Path) -> object:
        raise ValueError(f"{folder}/line.json: not JSON")

    monkeypatch.setattr(lines, "read_card", unreadable)  # left to serve to report, as before
    ensure_line_model(tmp_path, tmp_path, readapt=False)
    assert "demo-line v1 is already taught (--readapt" in capsys.readouterr().out
    assert taught_on == ["tinym"]


def test_an_unknown_demo_backbone_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inspect_app.cli import main

    assert main(["demo", "--home", str(tmp_path / "home"), "--backbone", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown backbone 'nope'" in err and "tinym" in err
    assert not (tmp_path / "home").exists()  # nothing made
