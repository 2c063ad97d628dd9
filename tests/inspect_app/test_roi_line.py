"""A camera that sees more than the part: `adapt --roi X,Y,W,H` crops every frame of the line to
the part's rectangle, in adapt, evaluate, a replayed dataset, a hot folder and `--from-db`; a
frame the rectangle does not fit in is a FAULT naming it."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspect_app.cli import main
from inspect_app.sources import open_source
from sensors.camera import FrameFormat, Roi
from tests.inspect_app.small_lines import correct_in_log, image_line

pytestmark = pytest.mark.usefixtures("small_teach_backbone")

X, Y = 50, 30  # where the part's 64 px frame sits in the camera's 160 x 120 view


def in_a_wider_view(folder: Path, out: Path, seed: int = 0) -> Path:
    """`folder` again with every frame (and mask) pasted at (X, Y) into a 160 x 120 view whose
    surroundings (a conveyor) are noise, new for every part."""
    shutil.copytree(folder, out)
    rng = np.random.default_rng(seed)
    with (out / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for column, fill in (("image", None), ("mask", 0)):
            if not row.get(column):
                continue
            path = out / row[column]
            small = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            shape = (120, 160, *small.shape[2:])
            view = (
                rng.integers(0, 256, shape, dtype=np.uint8)
                if fill is None
                else np.zeros(shape, small.dtype)
            )
            view[Y : Y + 64, X : X + 64] = small
            assert cv2.imwrite(str(path), view)
    return out


@pytest.mark.slow
def test_a_line_taught_on_a_region_sees_exactly_the_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain_train = image_line(tmp_path / "plain-train", 40, 0)
    plain_test = image_line(tmp_path / "plain-test", 24, 1000)
    wide_train = in_a_wider_view(plain_train, tmp_path / "wide-train")
    wide_test = in_a_wider_view(plain_test, tmp_path / "wide-test", seed=1)
    home = tmp_path / "home"
    common = ["--home", str(home), "--no-progress"]
    assert main(["adapt", *common, "--line", "plain", "--data", str(plain_train)]) == 0
    roi = f"{X},{Y},64,64"
    assert main(["adapt", *common, "--line", "wide", "--data", str(wide_train), "--roi", roi]) == 0
    out = capsys.readouterr().out
    assert f"cropped to the region of interest: 64x64 px at x {X}, y {Y}" in out
    card = json.loads((home / "lines" / "wide" / "v1" / "line.json").read_text())
    assert card["roi"] == [X, Y, 64, 64]

    metrics = {}
    for line, data in (("plain", plain_test), ("wide", wide_test)):
        report = tmp_path / f"{line}.json"
        argv = ["evaluate", *common, "--line", line, "--data", str(data), "--json", str(report)]
        assert main(argv) == 0
        metrics[line] = json.loads(report.read_text())
    for key in ("n", "n_fault", "auroc", "miss_rate", "false_reject_rate", "pixel_auroc"):
        assert metrics["wide"][key] == metrics["plain"][key], key  # the crop is the part

    # a frame the region does not fit in (another camera) is a FAULT naming the file
    first = sorted((wide_test / "images").iterdir())[0]
    cv2.imwrite(str(first), cv2.imread(str(first))[:80, :100])
    report = tmp_path / "cut.json"
    argv = ["evaluate", *common, "--line", "wide", "--data", str(wide_test), "--json", str(report)]
    assert main(argv) == 0
    m = json.loads(report.read_text())
    assert m["n_fault"] == 1
    reason = m["faults"][0]["reason"]
    assert (
        first.name in reason and "frame is 100x80 px" in reason and "region of interest" in reason
    )

    # the line's sources crop too: a replayed dataset and a hot folder
    replay = open_source(str(plain_test), frames=FrameFormat(roi=Roi(8, 8, 32, 32)))
    part = next(iter(replay))
    assert part.frame is not None and part.frame.shape == (32, 32, 3)
    watched = tmp_path / "watched"
    watched.mkdir()
    shutil.copy(sorted((wide_train / "images").iterdir())[0], watched / "P1.png")
    folder = open_source(
        str(watched), watch=True, modalities=("image",), frames=FrameFormat(roi=Roi(X, Y, 64, 64))
    )
    folder.idle_stop_s, folder.settle_s = 0.3, 0.0  # type: ignore[union-attr]
    (part,) = list(folder)
    original = sorted((plain_train / "images").iterdir())[0]
    expected = cv2.cvtColor(cv2.imread(str(original)), cv2.COLOR_BGR2RGB)
    assert part.frame is not None and np.array_equal(part.frame, expected)


@pytest.mark.slow
def test_adapt_from_db_keeps_the_lines_region(tmp_path: Path) -> None:
    """The corrected parts are written whole from the line's source; the version taught from
    them crops them, and the camera's frames, to the line's region again."""
    from sensors.dataset import LineDataset

    wide = in_a_wider_view(image_line(tmp_path / "plain", 40, 0), tmp_path / "wide")
    home = tmp_path / "home"
    argv = ["--home", str(home), "--line", "wide", "--no-progress"]
    assert main(["adapt", *argv, "--data", str(wide), "--roi", f"{X},{Y},64,64"]) == 0
    correct_in_log(home, "wide", [r.part_id for r in LineDataset.open(wide).rows[:12]])
    from_db = ["adapt", *argv, "--from-db", "--source-data", str(wide), "--samples", "12"]
    assert main(from_db) == 0
    card = json.loads((home / "lines" / "wide" / "v2" / "line.json").read_text())
    assert card["roi"] == [X, Y, 64, 64]
    written = LineDataset.open(card["adapt"]["data"])[0].frame
    assert written is not None and written.shape == (120, 160, 3)  # whole, cropped when read
