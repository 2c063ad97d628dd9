"""A vibration-only line whose parts give 100 ms of vibration each (a fast line): adapt fits its
spectra to the short windows, saves them in line.json, and evaluate uses them; a part with a
shorter window is a FAULT naming the need; a window under 20 ms is refused at adapt."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from inspect_app.cli import main
from inspect_app.lines import load_line_model
from sensors.spectrum import SpectrumConfig
from tests.inspect_app.small_lines import vibration_line

pytestmark = pytest.mark.usefixtures("small_teach_backbone")

RATE = 25600


def short_line(folder: Path, parts: int, start: int, seconds: float = 0.1) -> Path:
    """Parts `start`.. of a synthetic vibration-only line, `seconds` of vibration each."""
    classes = ("looseness", "bearing_inner")
    return vibration_line(folder, parts, start, classes, sample_rate_hz=RATE, duration_s=seconds)


def cut(folder: Path, row: int, seconds: float) -> str:
    """Shorten row `row`'s vibration file to `seconds`; its part id."""
    with (folder / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    path = folder / rows[row]["vibration"]
    np.save(path, np.load(path)[: round(seconds * RATE)])
    return rows[row]["part_id"]


@pytest.mark.slow
def test_a_line_with_100_ms_windows_is_taught_on_fitted_spectra_and_evaluated_with_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    train = short_line(tmp_path / "train", 40, 0)
    argv = ["--home", str(home), "--line", "fast", "--no-progress"]
    assert main(["adapt", *argv, "--data", str(train), "--samples", "30"]) == 0
    out = capsys.readouterr().out
    assert "vibration windows of 0.1 s: Welch segments of 0.05 s (20 Hz resolution)" in out

    card = json.loads((home / "lines" / "fast" / "v1" / "line.json").read_text())
    assert card["spectrum"]["welch_segment_s"] == pytest.approx(0.05)
    assert card["adapt"]["spectrum_fitted_to_window_s"] == pytest.approx(0.1)
    model_card = (home / "lines" / "fast" / "v1" / "MODEL_CARD.md").read_text()
    assert "vibration windows of 0.1 s: Welch segments of 0.05 s" in model_card
    _, loaded, _ = load_line_model(home, "fast")
    assert loaded.spectrum_config() == SpectrumConfig(psd_bins=32, env_bins=32).fit_window(0.1)

    test = short_line(tmp_path / "test", 20, 1000)
    short = cut(test, 0, 0.06)  # under the line's two 50 ms segments
    report = tmp_path / "m.json"
    assert main(["evaluate", *argv, "--data", str(test), "--json", str(report)]) == 0
    m = json.loads(report.read_text())
    assert m["n"] == 20 and m["n_fault"] == 1  # a FAULT, counted as FAIL, never judged
    reason = m["faults"][0]["reason"]
    assert short in reason and "too short" in reason and "0.1 s" in reason
    assert m["auroc"] > 0.75  # the line works on its fitted spectra (0.5 s windows: 0.95)


def test_a_window_under_20_ms_is_refused_at_adapt_naming_the_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = short_line(tmp_path / "train", 30, 0)
    part = cut(train, 3, 0.015)
    argv = ["--home", str(tmp_path / "home"), "--line", "fast", "--no-progress"]
    assert main(["adapt", *argv, "--data", str(train), "--samples", "30"]) != 0
    err = capsys.readouterr().err
    assert f"part {part}: vibration windows of 0.015 s are too short" in err
    assert not (tmp_path / "home" / "lines" / "fast").exists()  # nothing half-written
