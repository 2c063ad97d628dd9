"""`inspect-app calibrate`: a line's threshold set on more labeled parts, saved as a new version
with the same model (and exported graphs), switched to and rolled back like any version."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from inspect_app.calibrate import copy_version_files, split_half_check
from inspect_app.cli import main
from inspect_app.home import default_db_url
from inspect_app.lines import active_version, read_card, versions
from inspect_app.metrics import line_threshold
from inspect_app.store import DefectStore, InspectionRecord
from inspect_app.teach import EvaluateOptions, evaluate_line
from tests.inspect_app.small_lines import image_line, taught_image_line

LINE = "cover-2"


def _taught(tmp_path: Path) -> Path:
    return taught_image_line(tmp_path, LINE)


def _calibrate(home: Path, data: Path, *extra: str) -> int:
    argv = ["calibrate", "--home", str(home), "--line", LINE, "--data", str(data)]
    return main([*argv, "--no-progress", *extra])


@pytest.mark.usefixtures("small_teach_backbone")
def test_the_threshold_is_set_on_the_new_parts_and_only_the_threshold_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _taught(tmp_path)
    v1 = home / "lines" / LINE / "v1"
    taught = read_card(v1)
    # what `inspect-app export` and the Jetson's engine build leave in a version
    (v1 / "model.onnx").write_bytes(b"graph")
    meta = {"threshold": taught.threshold, "model_sha256": "ab12", "classes": taught.classes}
    (v1 / "model.onnx.json").write_text(json.dumps(meta), encoding="utf-8")
    (v1 / "model.engine").write_bytes(b"plan")
    capsys.readouterr()

    checks = image_line(tmp_path / "checks", 60, 1000)
    out_json = tmp_path / "calibration.json"
    assert _calibrate(home, checks, "--json", str(out_json)) == 0
    out = capsys.readouterr().out

    # the threshold is the line's rule on v1's scores of these parts, computed independently
    scored = evaluate_line(home, LINE, checks, EvaluateOptions(version="v1", show_progress=False))
    defect = np.array([p.defect_score for p in scored.parts if p.is_defective], dtype=float)
    good = np.array([p.defect_score for p in scored.parts if not p.is_defective], dtype=float)
    expected = line_threshold(defect, good, 0.005, 0.05)
    assert versions(home, LINE) == ["v1", "v2"] and active_version(home, LINE) == "v2"
    v2 = home / "lines" / LINE / "v2"
    card = read_card(v2)
    assert card.threshold == pytest.approx(expected)
    assert card.calibration["from_version"] == "v1"
    assert card.calibration["data"] == str(checks.resolve())
    assert card.calibration["n"] == 60 and card.calibration["held_out"]["splits"] == 20
    assert read_card(v1).threshold == taught.threshold  # the old version is untouched
    assert (v2 / "weights.safetensors").read_bytes() == (v1 / "weights.safetensors").read_bytes()
    assert (v2 / "model.engine").read_bytes() == b"plan"
    assert json.loads((v2 / "model.onnx.json").read_text())["threshold"] == pytest.approx(expected)
    assert json.loads((v1 / "model.onnx.json").read_text())["threshold"] == taught.threshold
    assert card.classes == taught.classes and card.adapt == taught.adapt

    assert f"threshold {taught.threshold:.4f} -> {expected:.4f}" in out
    assert "split-half check" in out and "v2 saved in" in out and "made active" in out
    assert "--activate v1" in out  # how to roll back
    result = json.loads(out_json.read_text())
    assert result["threshold"] == pytest.approx(expected)
    assert result["before"]["threshold"] == taught.threshold
    assert result["version"] == "v2" and result["activated"] is True
    assert [t["target_miss_rate"] for t in result["targets"]] == [0.005, 0.01, 0.02, 0.05, 0.1]

    # v2 scores the same parts as v1 did: only the decisions move
    again = evaluate_line(home, LINE, checks, EvaluateOptions(show_progress=False))
    assert [p.defect_score for p in again.parts] == [p.defect_score for p in scored.parts]
    assert again.miss_rate == result["after"]["miss_rate"]
    assert any("threshold was set on this folder" in n for n in again.notes)
    assert "inspect-app calibrate" in (v2 / "MODEL_CARD.md").read_text()

    assert main(["lines", "--home", str(home), "--line", LINE]) == 0
    listed = capsys.readouterr().out
    assert "* v2: calibrated " in listed and "from v1" in listed
    assert "threshold calibrated on 60 parts" in listed
    assert main(["lines", "--home", str(home), "--json"]) == 0
    (listed_line,) = json.loads(capsys.readouterr().out)
    v1_listed, v2_listed = listed_line["versions"]
    assert v1_listed["calibration"] is None
    assert v2_listed["calibration"]["from_version"] == "v1"
    assert v2_listed["calibration"]["n"] == 60 and v2_listed["threshold"] == card.threshold
    assert main(["lines", "--home", str(home), "--line", LINE, "--activate", "v1"]) == 0
    assert active_version(home, LINE) == "v1"


@pytest.mark.usefixtures("small_teach_backbone")
def test_dry_run_writes_nothing_and_no_activate_keeps_the_running_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _taught(tmp_path)
    checks = image_line(tmp_path / "checks", 40, 1000)
    assert _calibrate(home, checks, "--dry-run") == 0
    assert "dry run: nothing written" in capsys.readouterr().out
    assert versions(home, LINE) == ["v1"]
    assert _calibrate(home, checks, "--no-activate", "--target-miss-rate", "0.05") == 0
    assert "not active; switch with `inspect-app lines --line cover-2 --activate v2`" in (
        capsys.readouterr().out
    )
    assert versions(home, LINE) == ["v1", "v2"] and active_version(home, LINE) == "v1"
    assert read_card(home / "lines" / LINE / "v2").calibration["rule"] == "miss rate 0.05"


@pytest.mark.usefixtures("small_teach_backbone")
def test_bad_calls_are_clear_errors_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _taught(tmp_path)
    checks = image_line(tmp_path / "checks", 30, 1000)
    assert _calibrate(home, checks, "--target-miss-rate", "1.5") == 2
    assert "--target-miss-rate must be in [0, 1), got 1.5" in capsys.readouterr().err
    assert _calibrate(home, checks, "--version", "v7") == 1
    assert "has no version 'v7'" in capsys.readouterr().err

    table = checks / "labels.csv"
    with table.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["label"] != "ok")
    assert _calibrate(home, checks) == 1
    err = capsys.readouterr().err
    assert "no good part of" in err and "label some good parts" in err
    assert versions(home, LINE) == ["v1"] and active_version(home, LINE) == "v1"
    assert not [p for p in (home / "lines" / LINE).iterdir() if p.name.startswith(".tmp")]


def test_split_half_check_measures_the_rule_on_the_half_it_did_not_see() -> None:
    good = np.linspace(0.0, 0.4, 40)
    defect = np.linspace(0.6, 1.0, 40)
    clear = split_half_check(defect, good, 0.005, 0.05)
    assert clear is not None
    assert clear.miss_rate == 0.0 and clear.false_reject_rate == 0.0

    rng = np.random.default_rng(3)
    overlap_good, overlap_defect = rng.normal(0, 1, 200), rng.normal(1.5, 1, 200)
    held = split_half_check(overlap_defect, overlap_good, 0.005, 0.05, seed=1)
    assert held is not None and held.miss_rate is not None and held.miss_rate_max is not None
    # a threshold under the weakest of 100 defects: few of the other half below it, many
    # good parts above it
    assert 0.0 <= held.miss_rate < 0.05 and held.false_reject_rate > 0.5
    assert held.miss_rate_max >= held.miss_rate
    assert held == split_half_check(overlap_defect, overlap_good, 0.005, 0.05, seed=1)

    good_only = split_half_check(np.array([]), overlap_good, 0.005, 0.05)
    assert good_only is not None and good_only.miss_rate is None
    assert 0.0 < good_only.false_reject_rate < 0.15  # rejects about 5 % of the unseen half
    assert split_half_check(np.array([0.9]), overlap_good, 0.005, 0.05) is None
    assert split_half_check(defect, np.array([0.1]), 0.005, 0.05) is None


def test_copied_versions_get_the_threshold_only_in_export_metadata(tmp_path: Path) -> None:
    source, target = tmp_path / "v1", tmp_path / "v2"
    source.mkdir()
    target.mkdir()
    (source / "line.json").write_text('{"threshold": 0.3}', encoding="utf-8")
    (source / "MODEL_CARD.md").write_text("# v1", encoding="utf-8")
    (source / ".partial").write_text("x", encoding="utf-8")
    (source / "adapter").mkdir()
    (source / "adapter" / "adapter_config.json").write_text('{"r": 4}', encoding="utf-8")
    meta = {"threshold": 0.3, "model_sha256": "ab", "line_tensors": "model.line.npz"}
    (source / "model.onnx.json").write_text(json.dumps(meta), encoding="utf-8")
    (source / "notes.json").write_text('{"threshold": 0.3}', encoding="utf-8")
    (source / "broken.json").write_text("{", encoding="utf-8")
    copy_version_files(source, target, 0.125)
    assert sorted(p.name for p in target.iterdir()) == [
        "adapter",
        "broken.json",
        "model.onnx.json",
        "notes.json",
    ]
    assert json.loads((target / "model.onnx.json").read_text()) == {**meta, "threshold": 0.125}
    assert json.loads((target / "notes.json").read_text()) == {"threshold": 0.3}
    assert (target / "broken.json").read_text() == "{"
    assert json.loads((target / "adapter" / "adapter_config.json").read_text()) == {"r": 4}


# -- --from-db: the scores the line logged, labeled as the operators corrected them ------------

SHIFT = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)


def _logged(
    part: str, verdict: str, score: float | None, version: str = "v1", **extra: object
) -> InspectionRecord:
    cls = "scratch" if verdict == "FAIL" else None
    probs = {"scratch": 0.8, "dent": 0.2}
    fields: dict[str, object] = {"class_probs": probs, "timestamp": SHIFT, **extra}
    return InspectionRecord(
        LINE, version, part, verdict=verdict, defect_class=cls, defect_score=score, **fields
    )  # type: ignore[arg-type]


@pytest.mark.usefixtures("small_teach_backbone")
def test_from_db_sets_the_threshold_on_the_logged_scores_as_the_operators_corrected_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _taught(tmp_path)
    # v2: v1 calibrated on a folder (the same model); its logged parts count as v1's
    assert _calibrate(home, image_line(tmp_path / "checks", 20, 1000)) == 0
    taught_part = read_card(home / "lines" / LINE / "v1").adapt["part_ids"][0]
    good_pass = [0.01 * (i + 1) for i in range(20)]  # no one corrected them: good
    confirmed = [0.5 + 0.05 * i for i in range(10)]  # rejects the operators confirmed
    false_alarms = [0.30, 0.33, 0.36, 0.40, 0.45]
    escapes = [0.05, 0.06]  # passed, found defective later and relabelled
    unreviewed_fail = [0.7, 0.8, 0.9]
    replayed = [("ok", 0.12), ("ok", 0.15), ("scratch", 0.55), ("dent", 0.65)]
    records = [_logged(f"g{i}", "PASS", s) for i, s in enumerate(good_pass)]
    records += [_logged(f"c{i}", "FAIL", s, "v2") for i, s in enumerate(confirmed)]
    records += [_logged(f"f{i}", "FAIL", s) for i, s in enumerate(false_alarms)]
    records += [_logged(f"e{i}", "PASS", s) for i, s in enumerate(escapes)]
    records += [_logged(f"u{i}", "FAIL", s) for i, s in enumerate(unreviewed_fail)]
    records += [
        _logged(f"r{i}", "FAIL" if s > 0.5 else "PASS", s, label=label)
        for i, (label, s) in enumerate(replayed)
    ]
    # left out: not inspected, taught from, another model's, before the window
    records += [
        _logged("fault", "FAULT", None, fault_reason="camera timeout"),
        _logged(taught_part, "PASS", 0.99),
        _logged("other", "PASS", 0.98, "v9"),
        _logged("early", "PASS", 0.97, timestamp=SHIFT - timedelta(hours=3)),
    ]
    with DefectStore.open(default_db_url(home)) as store:
        ids = dict(zip([r.part_id for r in records], store.add_inspections(records), strict=True))
        for i in range(len(confirmed)):
            store.add_operator_action(ids[f"c{i}"], "confirm", "A. Jones")
        for i in range(len(false_alarms)):
            store.add_operator_action(ids[f"f{i}"], "false_alarm", "A. Jones")
        for i in range(len(escapes)):
            store.add_operator_action(ids[f"e{i}"], "relabel", "B. Smith", new_class="dent")
    capsys.readouterr()

    argv = ["calibrate", "--home", str(home), "--line", LINE, "--from-db", "--no-progress"]
    assert main([*argv, "--since", "2026-12-06T07:00+00:00"]) == 0
    out = capsys.readouterr().out

    good = good_pass + false_alarms + [s for label, s in replayed if label == "ok"]
    defect = confirmed + escapes + unreviewed_fail + [s for label, s in replayed if label != "ok"]
    expected = line_threshold(np.array(defect), np.array(good), 0.005, 0.05)
    assert 0.04 < expected <= 0.05  # under the escapes: neither of them may pass again
    assert versions(home, LINE) == ["v1", "v2", "v3"] and active_version(home, LINE) == "v3"
    card = read_card(home / "lines" / LINE / "v3")
    assert card.threshold == pytest.approx(expected)
    assert card.calibration["from_version"] == "v2" and card.calibration["n"] == len(good) + len(
        defect
    )
    assert card.calibration["n_defective"] == len(defect)
    log = card.calibration["log"]
    assert sorted(log["versions"]) == ["v1", "v2"]
    assert (log["operator"], log["replayed"]) == (17, 4)
    assert (log["unreviewed_pass"], log["unreviewed_fail"]) == (20, 3)
    assert (log["faults"], log["taught"]) == (1, 1)
    assert log["passes_checked"] == 4  # two escapes relabelled, two replayed good parts
    assert "labels: 17 by operators, 4 as replayed, 3 unreviewed FAIL" in out
    assert "3 FAIL part(s) no operator reviewed were taken as defective" in out
    assert "1 part(s) the version was taught from were left out" in out
    assert "the same model with the new threshold" in out
    assert main(["lines", "--home", str(home), "--line", LINE]) == 0
    listed = capsys.readouterr().out
    assert "threshold calibrated on 44 parts of the defect log (17 defective)" in listed
    assert (
        "labeled by 17 operator actions"
        in (home / "lines" / LINE / "v3" / "MODEL_CARD.md").read_text()
    )


@pytest.mark.usefixtures("small_teach_backbone")
def test_from_db_refuses_what_it_cannot_use_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _taught(tmp_path)
    base = ["calibrate", "--home", str(home), "--line", LINE, "--no-progress"]
    assert main([*base, "--from-db"]) == 1  # no log yet: not created empty
    assert "no defect log at" in capsys.readouterr().err
    assert not (home / "inspect.db").exists()
    assert main([*base, "--from-db", "--data", str(tmp_path / "parts")]) == 2
    assert "give either --data DIR or --from-db" in capsys.readouterr().err
    assert main(base) == 2
    assert main([*base, "--from-db", "--backend", "onnxruntime"]) == 2
    assert "--from-db uses the scores the line logged" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path / "parts"), "--since", "8h"]) == 2
    assert "add --from-db" in capsys.readouterr().err
    assert main([*base, "--from-db", "--since", "yesterday"]) == 2
    assert "time 'yesterday' is not understood" in capsys.readouterr().err

    with DefectStore.open(default_db_url(home)) as store:
        store.add_inspections([_logged("x1", "PASS", 0.1, "v9")])  # another model's part only
    assert main([*base, "--from-db"]) == 1
    err = capsys.readouterr().err
    assert "has no inspected part of line 'cover-2' decided by v1" in err
    assert versions(home, LINE) == ["v1"]


@pytest.mark.usefixtures("small_teach_backbone")
def test_from_db_keeps_the_threshold_down_when_no_passed_part_was_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Operators who review only rejects say nothing of the defects a higher threshold would
    pass: the threshold may not rise on their word alone, unless --trust-passes."""
    home = _taught(tmp_path)
    v1 = read_card(home / "lines" / LINE / "v1").threshold
    top = v1 + 1.0  # scores above v1's threshold: FAIL parts; below: PASS
    records = [_logged(f"g{i}", "PASS", v1 * i / 40) for i in range(40)]
    records += [_logged(f"f{i}", "FAIL", v1 + 0.1 + 0.01 * i) for i in range(10)]
    records += [_logged(f"c{i}", "FAIL", top + 0.1 * i) for i in range(10)]
    with DefectStore.open(default_db_url(home)) as store:
        ids = dict(zip([r.part_id for r in records], store.add_inspections(records), strict=True))
        for i in range(10):
            store.add_operator_action(ids[f"f{i}"], "false_alarm", "A. Jones")
            store.add_operator_action(ids[f"c{i}"], "confirm", "A. Jones")
    argv = ["calibrate", "--home", str(home), "--line", LINE, "--from-db", "--no-progress"]
    capsys.readouterr()

    assert main([*argv, "--dry-run", "--json", str(tmp_path / "held.json")]) == 0
    out = capsys.readouterr().out
    held = json.loads((tmp_path / "held.json").read_text())
    assert held["threshold"] == v1 and held["log"]["passes_checked"] == 0
    assert "the rule would raise the threshold to" in out
    assert "false-reject rate 0.0 % instead of 20.0 % here" in out
    assert "no passed part was checked by an operator" in out and "--trust-passes" in out
    assert "none of the 40 PASS part(s) was checked: the miss rate here counts only" in out

    assert main(argv) == 0  # held: no new version with the same threshold
    out = capsys.readouterr().out
    assert "no version written: v1 keeps its threshold" in out and "nothing written" in out
    assert versions(home, LINE) == ["v1"]

    assert main([*argv, "--trust-passes"]) == 0
    card = read_card(home / "lines" / LINE / "v2")
    expected = line_threshold(
        np.array([top + 0.1 * i for i in range(10)]),
        np.array([r.defect_score for r in records[:50]], dtype=float),
        0.005,
        0.05,
    )
    assert card.threshold == pytest.approx(expected) and expected > v1 + 0.2
