"""Snapshots of rejected parts: overlay image + vibration window, with a retention limit."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inspect_app.decision import Verdict, fault
from inspect_app.pipeline import InspectedPart
from inspect_app.snapshots import (
    RetentionPolicy,
    SnapshotStore,
    find_snapshot,
    overlay,
    snapshot_dir_for,
)
from sensors.sample import Sample, VibrationWindow


def failed_part(i: int) -> InspectedPart:
    frame = np.full((32, 48, 3), 100, np.uint8)
    heat = np.zeros((4, 6), np.float32)
    heat[1, 4] = 1.0
    vib = VibrationWindow(np.linspace(-1, 1, 500, dtype=np.float32), 2000.0)
    sample = Sample(part_id=f"line/part {i}", frame=frame, vibration=vib)
    verdict = Verdict("FAIL", defect_class="dent", box=(4 / 6, 1 / 4, 5 / 6, 2 / 4))
    return InspectedPart(sample=sample, verdict=verdict, heatmap=heat)


def test_saves_overlay_and_vibration(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snaps")
    path = Path(str(store.save(failed_part(1))))
    assert path.suffix == ".jpg" and path.parent == tmp_path / "snaps"
    assert "/" not in path.name.replace("line_part_1", "")  # the part id cannot escape the folder
    image = cv2.imread(str(path))
    assert image.shape == (32, 48, 3)
    assert np.abs(image[12, 34].astype(int) - 100).max() > 30  # the hot region is coloured
    assert np.abs(image[28, 4].astype(int) - 100).max() <= 4  # a cold corner is untouched (JPEG)
    vib = np.load(path.with_suffix(".npz"))
    assert vib["samples"].shape == (500,) and float(vib["sample_rate_hz"]) == 2000.0


def test_fault_without_data_saves_nothing(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    assert store.save(InspectedPart(Sample(part_id="x"), fault("camera lost"))) is None
    assert store.parts == 0


def test_retention_by_count_and_bytes(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, RetentionPolicy(max_parts=3))
    paths = [Path(str(store.save(failed_part(i)))) for i in range(5)]
    assert store.parts == 3
    assert not paths[0].exists() and not paths[1].with_suffix(".npz").exists()
    assert all(p.exists() for p in paths[2:])
    one_part = store.total_bytes // 3
    small = SnapshotStore(tmp_path, RetentionPolicy(max_parts=100, max_bytes=int(one_part * 1.5)))
    assert small.parts == 1  # reopening an existing folder enforces the new limit too
    assert sorted(p.name for p in tmp_path.iterdir())[0].startswith(paths[4].stem)


def test_snapshot_folder_sits_beside_a_sqlite_db(tmp_path: Path) -> None:
    assert (
        snapshot_dir_for(f"sqlite:///{tmp_path}/log/inspect.db", tmp_path)
        == tmp_path / "log" / "snapshots"
    )
    assert snapshot_dir_for("postgresql+psycopg://u@h/db", tmp_path) == tmp_path / "snapshots"
    with pytest.raises(ValueError, match="max_parts"):
        RetentionPolicy(max_parts=0)


def test_each_line_writes_into_its_own_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/log/inspect.db"
    assert snapshot_dir_for(url, tmp_path, "line-2") == tmp_path / "log" / "snapshots" / "line-2"
    assert snapshot_dir_for("postgresql+psycopg://u@h/db", tmp_path, "l") == (
        tmp_path / "snapshots" / "l"
    )
    with pytest.raises(ValueError, match="is not allowed"):
        snapshot_dir_for(url, tmp_path, "../x")


def test_find_snapshot_follows_a_moved_folder(tmp_path: Path) -> None:
    """A log row keeps the path it was written with; a moved HOME or log is still searched,
    in the line's folder (this layout) and at the top (snapshots written before it)."""
    store = SnapshotStore(tmp_path / "old" / "snapshots" / "line-1")
    stored = str(store.save(failed_part(1)))
    assert find_snapshot(stored, ()) == Path(stored)
    assert find_snapshot(stored, (), suffix=".npz") == Path(stored).with_suffix(".npz")
    moved = tmp_path / "new" / "snapshots"
    moved.parent.mkdir()
    (tmp_path / "old" / "snapshots").rename(moved)
    assert (
        find_snapshot(stored, (tmp_path / "nowhere", moved)) == moved / "line-1" / Path(stored).name
    )
    flat = tmp_path / "flat"
    (moved / "line-1").rename(flat)
    assert (
        find_snapshot(stored, (flat,), suffix=".npz")
        == flat / Path(stored).with_suffix(".npz").name
    )
    assert find_snapshot("relative/x.jpg", (tmp_path,)) is None
    assert find_snapshot(None, (flat,)) is None and find_snapshot("", (flat,)) is None


def test_overlay_of_gray_frame() -> None:
    out = overlay(np.zeros((10, 10), np.uint8), None, (0.0, 0.0, 0.5, 0.5))
    assert out.shape == (10, 10, 3) and out[0, 0].tolist() == [255, 0, 0]
