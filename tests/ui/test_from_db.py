"""Operator-corrected parts → an adaptation dataset folder (inspect_app.from_db)."""

from __future__ import annotations

import wave
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspect_app.from_db import effective_label, export_corrections
from inspect_app.store import DefectStore, InspectionRecord
from sensors.dataset import LineDataset
from sensors.errors import DataError

NOW = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)


def record(
    part: str, verdict: str, cls: str | None = None, snapshot: str | None = None
) -> InspectionRecord:
    return InspectionRecord(
        "press-1", "v1", part, NOW, verdict, cls, 0.9 if verdict == "FAIL" else 0.1,
        fault_reason="camera timeout" if verdict == "FAULT" else None, snapshot_path=snapshot,
    )  # fmt: skip


def write_snapshot(folder: Path, stem: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        folder / f"{stem}.npz",
        samples=np.sin(np.arange(2048, dtype=np.float32) / 7),
        sample_rate_hz=np.float64(12800.0),
    )
    (folder / f"{stem}.jpg").write_bytes(b"evidence image with the heat-map drawn in")
    return str(folder / f"{stem}.jpg")


def test_snapshot_vibration_is_used_and_the_overlay_image_is_not(
    store: DefectStore, tmp_path: Path
) -> None:
    snap = write_snapshot(tmp_path / "snapshots", "p1-FAIL")
    [fail_id, pass_id, fault_id, untouched_id] = store.add_inspections(
        [
            record("p1", "FAIL", "crack", snap),
            record("p2", "PASS"),
            record("p3", "FAULT"),
            record("p4", "FAIL", "crack"),
        ]
    )
    del untouched_id
    store.add_operator_action(fail_id, "false_alarm", "A. Jones", "glare")
    store.add_operator_action(pass_id, "relabel", "A. Jones", new_class="dent")
    store.add_operator_action(fault_id, "confirm", "A. Jones")

    result = export_corrections(store, "press-1", tmp_path / "out", show_progress=False)

    assert [(p.part_id, p.label, p.image) for p in result.parts] == [("p1", "ok", None)]
    skipped = dict(result.skipped)
    assert set(skipped) == {"p2", "p3"}  # p4 was never corrected
    assert "no snapshot" in skipped["p2"] and "no label" in skipped["p3"]
    ds = LineDataset.open(tmp_path / "out")
    part = ds[0]
    assert ds.labels == ["ok"] and part.frame is None
    assert part.vibration is not None and part.vibration.sample_rate_hz == 12800.0
    assert part.vibration.samples.shape == (2048,)


def test_nothing_corrected_or_a_used_folder_is_refused(store: DefectStore, tmp_path: Path) -> None:
    [part_id] = store.add_inspections([record("p1", "FAIL", "crack")])
    with pytest.raises(ValueError, match="no operator-corrected parts"):
        export_corrections(store, "press-1", tmp_path / "out", show_progress=False)
    store.add_operator_action(part_id, "confirm", "A. Jones")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "labels.csv").write_text("image,label\n")
    with pytest.raises(ValueError, match="not empty"):
        export_corrections(store, "press-1", tmp_path / "used", show_progress=False)
    with pytest.raises(ValueError, match="none of the 1 corrected parts"):
        export_corrections(store, "press-1", tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


def test_effective_label_follows_the_latest_action(store: DefectStore) -> None:
    [i] = store.add_inspections([record("p1", "FAIL", "crack")])
    store.add_operator_action(i, "relabel", "A. Jones", new_class="dent")
    assert effective_label(store.inspection(i)) == "dent"
    store.add_operator_action(i, "false_alarm", "B. Smith")
    assert effective_label(store.inspection(i)) == "ok"
    store.add_operator_action(i, "confirm", "C. Lee")
    assert effective_label(store.inspection(i)) == "crack"


def test_dataset_for_adapt_writes_under_home_and_finds_snapshots_beside_the_log(
    tmp_path: Path,
) -> None:
    from inspect_app.from_db import dataset_for_adapt

    db_url = f"sqlite:///{tmp_path / 'plant' / 'inspect.db'}"
    (tmp_path / "plant").mkdir()
    # The snapshot was written beside the log, then the folder moved: found by name.
    write_snapshot(tmp_path / "plant" / "snapshots", "p1-FAIL")
    with DefectStore.open(db_url) as store:
        [i] = store.add_inspections([record("p1", "FAIL", "crack", "/gone/p1-FAIL.jpg")])
        store.add_operator_action(i, "relabel", "A. Jones", new_class="dent")
    result = dataset_for_adapt(tmp_path / "home", "press-1", db_url, show_progress=False)
    assert result.folder.parent == tmp_path / "home" / "adapt-data" / "press-1"
    assert result.label_counts == {"dent": 1}
    with pytest.raises(ValueError, match="not allowed"):
        dataset_for_adapt(tmp_path / "home", "../x", db_url, show_progress=False)


def test_adapt_from_db_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inspect_app.cli import main

    home = str(tmp_path / "home")
    assert main(["adapt", "--home", home, "--line", "press-1"]) == 2
    assert "either --data DIR or --from-db" in capsys.readouterr().err
    db = f"sqlite:///{tmp_path / 'inspect.db'}"
    argv = ["adapt", "--home", home, "--line", "press-1", "--from-db", "--db", db]
    assert main(argv) == 1
    assert "no defect log at" in capsys.readouterr().err
    assert not (tmp_path / "inspect.db").exists()  # not created empty by asking
    DefectStore.open(db).close()
    assert main(argv) == 1
    assert "no operator-corrected parts" in capsys.readouterr().err


def test_a_hot_folder_is_a_source_too(store: DefectStore, tmp_path: Path) -> None:
    """An escape (a PASS the operator relabels as a defect) has no snapshot; on a line that
    runs `serve --watch` its frame and WAV are still in the hot folder, named by part id."""
    hot = tmp_path / "incoming"
    hot.mkdir()
    cv2.imwrite(str(hot / "p7.png"), np.full((24, 24, 3), 70, np.uint8))
    t = np.arange(4000) / 8000
    pcm = (0.3 * np.sin(2 * np.pi * 200 * t) * 32767).astype(np.int16)
    with wave.open(str(hot / "p7.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(pcm.tobytes())
    (pass_id,) = store.add_inspections([record("p7", "PASS")])
    store.add_operator_action(pass_id, "relabel", "A. Jones", new_class="dent")

    result = export_corrections(store, "press-1", tmp_path / "out", [hot], show_progress=False)

    (part,) = result.parts
    assert part.part_id == "p7" and part.label == "dent"
    assert part.image is not None and part.vibration is not None
    assert str(hot) in part.origin
    ds = LineDataset.open(tmp_path / "out")
    assert ds[0].vibration is not None and ds[0].vibration.sample_rate_hz == 8000
    day = hot / "2026-12-06"  # `serve --watch --recursive` named this part 2026-12-06/p8
    day.mkdir()
    cv2.imwrite(str(day / "p8.png"), np.full((24, 24, 3), 90, np.uint8))
    (in_day,) = store.add_inspections([record("2026-12-06/p8", "FAIL", "dent")])
    store.add_operator_action(in_day, "false_alarm", "A. Jones")
    again = export_corrections(store, "press-1", tmp_path / "out2", [hot], show_progress=False)
    assert ("2026-12-06/p8", "ok") in {(p.part_id, p.label) for p in again.parts}
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a dataset"):  # an empty folder is no source
        export_corrections(store, "press-1", tmp_path / "o2", [tmp_path / "empty"])
