"""A line whose camera saves 12-bit samples in 16-bit PNGs (Mono12 as 0..4095, as machine-vision
cameras do): adapt finds the 12 bits and records them, and evaluate and the hot folder read every
frame with them, so the line sees what an 8-bit camera of the same scene would give it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspect_app.cli import main
from inspect_app.sources import HotFolder
from sensors.camera import FrameFormat
from tests.inspect_app.small_lines import correct_in_log, image_line

pytestmark = pytest.mark.usefixtures("small_teach_backbone")


def to_twelve_bits(folder: Path) -> Path:
    """Rewrite every PNG frame of `folder` (masks aside) as 16-bit holding 0..4095."""
    for path in folder.rglob("*.png"):
        if "mask" in path.name:
            continue
        eight = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        twelve = (eight.astype(np.uint16) << 4) | (eight >> 4)
        assert cv2.imwrite(str(path), twelve)
    return folder


@pytest.mark.slow
def test_a_line_of_12_bit_frames_is_taught_and_read_with_its_bits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    train = to_twelve_bits(image_line(tmp_path / "train", 40, 0))
    argv = ["--home", str(home), "--line", "mono12", "--no-progress"]
    assert main(["adapt", *argv, "--data", str(train), "--samples", "30"]) == 0
    out = capsys.readouterr().out
    assert "frames hold 12-bit samples in 16-bit files: every frame is read as 0..4095" in out
    card = json.loads((home / "lines" / "mono12" / "v1" / "line.json").read_text())
    assert card["image_bits"] == 12
    assert "12-bit samples" in (home / "lines" / "mono12" / "v1" / "MODEL_CARD.md").read_text()

    # the same test parts as 8-bit files and as 12-bit ones score alike
    eight = image_line(tmp_path / "test8", 24, 1000)
    twelve = to_twelve_bits(Path(shutil.copytree(eight, tmp_path / "test12")))
    metrics = {}
    for name, folder in (("8", eight), ("12", twelve)):
        report = tmp_path / f"m{name}.json"
        assert main(["evaluate", *argv, "--data", str(folder), "--json", str(report)]) == 0
        metrics[name] = json.loads(report.read_text())
    for key in ("n", "n_fault", "auroc", "miss_rate", "false_reject_rate", "per_class"):
        assert metrics["12"][key] == metrics["8"][key], key
    assert metrics["12"]["n_fault"] == 0

    # a hot folder of the line reads its frames with the line's bits too
    watched = tmp_path / "watched"
    watched.mkdir()
    first = sorted(twelve.rglob("*.png"))[0]
    shutil.copy(first, watched / "P1.png")
    folder = HotFolder(watched, settle_s=0.0, poll_s=0.02, idle_stop_s=0.3, frames=FrameFormat(12))
    (part,) = list(folder)
    original = cv2.cvtColor(cv2.imread(str(eight / first.relative_to(twelve))), cv2.COLOR_BGR2RGB)
    assert part.frame is not None and np.array_equal(part.frame, original)


@pytest.mark.slow
def test_adapt_from_db_keeps_the_lines_bits_for_its_camera(tmp_path: Path) -> None:
    """The corrected parts are written as 8-bit PNG; the version taught from them must still
    read the camera's 12-bit files with 12 bits."""
    from sensors.dataset import LineDataset

    home = tmp_path / "home"
    train = to_twelve_bits(image_line(tmp_path / "train", 40, 0))
    argv = ["--home", str(home), "--line", "mono12", "--no-progress"]
    assert main(["adapt", *argv, "--data", str(train), "--samples", "30"]) == 0
    correct_in_log(home, "mono12", [r.part_id for r in LineDataset.open(train).rows[:12]])
    from_db = ["adapt", *argv, "--from-db", "--source-data", str(train), "--samples", "12"]
    assert main(from_db) == 0
    card = json.loads((home / "lines" / "mono12" / "v2" / "line.json").read_text())
    assert card["image_bits"] == 12
    written = LineDataset.open(card["adapt"]["data"])
    assert written[0].frame is not None and written[0].frame.max() > 40  # not a dark frame
