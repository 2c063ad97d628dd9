"""`inspect-app capture`: a camera's parts written as a dataset folder that adapt and evaluate
read, labeled per run or left to fill in, appended run after run, never half-written."""

from __future__ import annotations

import csv
from itertools import count
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspect_app.capture import COLUMNS, capture_parts
from inspect_app.cli import main
from sensors.dataset import LineDataset
from sensors.sample import Sample, VibrationWindow


def _video(path: Path, frames: int, value: int) -> Path:
    """A small MJPG video whose frame i is a grey level `value` with a bright square at i."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((64, 96, 3), value, np.uint8)
        frame[8:24, 4 * i : 4 * i + 16] = 250
        writer.write(frame)
    writer.release()
    return path


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_runs_append_labeled_parts_that_the_dataset_reader_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "parts"
    good = _video(tmp_path / "good.avi", 8, 90)
    dented = _video(tmp_path / "dented.avi", 3, 160)
    argv = ["capture", "--out", str(out), "--no-progress"]
    assert main([*argv, "--source", str(good), "--parts", "5", "--label", "ok"]) == 0
    assert "5 part(s) written to" in capsys.readouterr().out
    assert main([*argv, "--source", str(dented), "--parts", "5", "--label", "dent"]) == 0
    printed = capsys.readouterr().out
    assert "3 part(s) appended to" in printed and "the source ended after 3 of 5" in printed
    assert main([*argv, "--source", str(good), "--parts", "2"]) == 0
    assert "next: fill in the label column" in capsys.readouterr().out

    rows = _rows(out)
    assert [r["label"] for r in rows] == ["ok"] * 5 + ["dent"] * 3 + ["", ""]
    assert len({r["part_id"] for r in rows}) == 10
    ds = LineDataset.open(out)
    assert [r.label for r in ds.rows] == ["ok"] * 5 + ["dent"] * 3 + [None, None]
    parts = list(ds)
    capture = cv2.VideoCapture(str(good))
    ok, first = capture.read()
    capture.release()
    assert ok
    # the frame as the camera gave it: lossless, whole, RGB
    np.testing.assert_array_equal(parts[0].frame, cv2.cvtColor(first, cv2.COLOR_BGR2RGB))
    assert parts[5].frame is not None and parts[5].frame.mean() > parts[0].frame.mean()


def test_a_paired_recording_gives_each_part_its_vibration_window(tmp_path: Path) -> None:
    rate = 8000.0
    recording = tmp_path / "acc.npy"
    np.save(recording, np.sin(np.arange(int(rate * 3)) / 5.0).astype(np.float32))
    out = tmp_path / "parts"
    argv = ["capture", "--source", str(_video(tmp_path / "v.avi", 4, 90)), "--out", str(out)]
    argv += ["--vibration", str(recording), "--sample-rate", "8000", "--window-s", "0.5"]
    assert main([*argv, "--parts", "3", "--label", "ok", "--no-progress"]) == 0
    rows = _rows(out)
    assert [r["sample_rate_hz"] for r in rows] == ["8000"] * 3
    parts = list(LineDataset.open(out))
    assert all(p.vibration is not None and p.vibration.samples.size == 4000 for p in parts)


def test_faults_are_not_written_and_every_limits_the_rate(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)

    def frame() -> np.ndarray:  # a live camera's noise
        return rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)

    samples = [
        Sample("a", frame=frame()),
        Sample("b", fault="camera: read failed"),
        Sample("c", frame=frame()),
        Sample("d", frame=frame()),
        Sample("e", vibration=VibrationWindow(rng.normal(size=64).astype(np.float32), 1000.0)),
    ]
    result = capture_parts(samples, tmp_path / "p", 10)
    assert result.written == 4 and result.skipped == [("b", "camera: read failed")]
    rows = _rows(tmp_path / "p")
    assert [r["part_id"] for r in rows] == ["a", "c", "d", "e"]
    assert rows[-1]["image"] == "" and rows[-1]["vibration"] == "vibration/e.npy"
    ticks = count(step=0.4)  # a frame every 0.4 s, at most one part every 0.7 s kept
    result = capture_parts(samples, tmp_path / "r", 10, every_s=0.7, clock=lambda: next(ticks))
    assert [r["part_id"] for r in _rows(tmp_path / "r")] == ["a", "c", "e"]
    assert capture_parts(samples, tmp_path / "s", 2).written == 2  # stops at --parts
    with pytest.raises(ValueError, match="not a class slug"):
        capture_parts(samples, tmp_path / "q", 1, label="bad label")


def test_parts_the_line_could_not_inspect_are_not_written_as_teaching_data(
    tmp_path: Path,
) -> None:
    """A covered camera's uniform frame, a disconnected accelerometer's flat window and a frozen
    feed's repeated frame would each become a part to teach from: skipped, with the reason."""
    rng = np.random.default_rng(1)
    live = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    samples = [
        Sample("a", frame=live),
        Sample("frozen", frame=live.copy()),  # the last live frame handed out again
        Sample("dark", frame=np.zeros((8, 8, 3), np.uint8)),
        Sample("flat", vibration=VibrationWindow(np.zeros(64, np.float32), 1000.0)),
        Sample("b", frame=rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)),
    ]
    result = capture_parts(samples, tmp_path / "p", 10)
    assert [r["part_id"] for r in _rows(tmp_path / "p")] == ["a", "b"]
    why = dict(result.skipped)
    assert list(why) == ["frozen", "dark", "flat"]
    assert "image is uniform" in why["dark"] and "vibration is flat" in why["flat"]
    assert "image identical, sample for sample, to part a's" in why["frozen"]


def test_bad_targets_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = str(_video(tmp_path / "v.avi", 2, 90))
    other = tmp_path / "dataset"
    other.mkdir()
    (other / "labels.csv").write_text("image,label\na.png,ok\n", encoding="utf-8")
    assert main(["capture", "--source", video, "--out", str(other), "--no-progress"]) == 1
    assert "not a capture's" in capsys.readouterr().err
    assert (other / "labels.csv").read_text(encoding="utf-8") == "image,label\na.png,ok\n"
    assert main(["capture", "--source", str(other), "--out", str(tmp_path / "x")]) == 1
    assert "is a folder: its parts are files already" in capsys.readouterr().err
    assert main(["capture", "--source", video, "--out", str(tmp_path / "y"), "--parts", "0"]) == 2
    assert tuple(COLUMNS)[-1] == "label"
