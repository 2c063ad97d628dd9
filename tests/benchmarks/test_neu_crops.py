"""benchmarks/neu_crops.py: ok and defective crops of NEU-DET images, kept apart by image.

The second test reads the real NEU-DET images in ../shared/data and skips without them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import neu_crops
from benchmarks.fewshot import DATA
from sensors.sample import OK_LABEL


def test_crops_far_from_every_box_are_ok_and_crops_a_box_covers_are_defective() -> None:
    mask = np.zeros((200, 200), bool)
    mask[10:60, 120:190] = True  # one box, top right
    ok, bad = neu_crops.classify_crops(mask, crop=64)
    assert neu_crops.crop_positions(200, 64, 17) == [0, 17, 34, 51, 68, 85, 102, 119, 136]
    assert (136, 0) in ok and (0, 0) in ok  # bottom left, and top left (56 px from the box)
    assert (0, 119) in bad and (0, 136) in bad
    for y, x in ok:  # no box within CLEAR_PX of an ok crop
        y0, x0 = max(0, y - neu_crops.CLEAR_PX), max(0, x - neu_crops.CLEAR_PX)
        assert not mask[y0 : y + 64 + neu_crops.CLEAR_PX, x0 : x + 64 + neu_crops.CLEAR_PX].any()
    for y, x in bad:
        assert mask[y : y + 64, x : x + 64].mean() >= neu_crops.MIN_COVER
    assert (34, 68) not in ok and (34, 68) not in bad  # grazes the box: neither


@pytest.mark.skipif(
    not (DATA / "neu-det" / "labels.csv").is_file(), reason="NEU-DET not in ../shared/data"
)
def test_crop_tasks_keep_adapt_and_test_images_apart() -> None:
    tasks = neu_crops.crop_tasks()
    assert [t.name for t in tasks] == [f"neu-{c} crops" for c in neu_crops.CLASSES]
    for task in tasks:
        pool = {s.meta["crop_of"] for s in task.pool}
        test = {s.meta["crop_of"] for s in task.test}
        assert pool and test and not pool & test
        for s in task.pool + task.test:
            assert s.frame is not None and s.frame.shape[:2] == (neu_crops.CROP, neu_crops.CROP)
            assert s.mask is not None
            assert s.mask.any() == (s.label != OK_LABEL)
        labels = [s.label for s in task.test]
        assert labels.count(OK_LABEL) >= 30 and len(labels) - labels.count(OK_LABEL) >= 30


@pytest.mark.skipif(
    not (DATA / "neu-det" / "labels.csv").is_file(), reason="NEU-DET not in ../shared/data"
)
def test_the_benchmark_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One class, one seed, the classical baseline (no adapt): the command runs through
    fewshot's task runner and prints its table (it once stopped on an argument it lacked)."""
    out = tmp_path / "crops.json"
    argv = ["--classes", "scratches", "--seeds", "0", "--methods", "classical"]
    assert neu_crops.main([*argv, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["task"] for r in rows] == ["neu-scratches crops"]
    assert 0.5 < rows[0]["auroc"] <= 1.0
    assert "neu-scratches crops" in capsys.readouterr().out
