"""A machine whose housing rings above the default envelope band (8 kHz, at 25.6 kHz): adapt
moves the line's envelope band there, says so, saves it, and evaluate measures every part in it;
a part sampled too slowly for the moved band is a FAULT naming the rates."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from inspect_app.cli import main
from sensors.synthetic import LineSpec
from tests.inspect_app.small_lines import vibration_line

pytestmark = pytest.mark.usefixtures("small_teach_backbone")


def ringing_line(folder: Path, parts: int, start: int) -> Path:
    """Parts `start`.. of a vibration-only line whose housing rings at 8 kHz, 0.5 s windows."""
    classes = ("bearing_outer", "imbalance")
    return vibration_line(folder, parts, start, classes, duration_s=0.5, housing_hz=8000.0)


def test_the_generator_moves_only_the_housing() -> None:
    drawn = LineSpec.from_seed(7)
    stiff = LineSpec.from_seed(7, housing_hz=8000.0)
    assert stiff.machine.housing.freq_hz == 8000.0
    assert stiff.machine.housing.damping == drawn.machine.housing.damping
    assert (stiff.classes, stiff.surface, stiff.geometry) == (
        drawn.classes,
        drawn.surface,
        drawn.geometry,
    )
    with pytest.raises(ValueError, match="housing_hz must lie between 1000 Hz and"):
        LineSpec.from_seed(7, housing_hz=12000.0)


@pytest.mark.slow
def test_a_line_ringing_at_8k_is_taught_on_its_own_envelope_band(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    argv = ["--home", str(home), "--line", "stiff", "--no-progress"]
    train = ringing_line(tmp_path / "train", 40, 0)
    assert main(["adapt", *argv, "--data", str(train), "--samples", "30"]) == 0
    out = capsys.readouterr().out
    card = json.loads((home / "lines" / "stiff" / "v1" / "line.json").read_text())
    lo, hi = card["spectrum"]["env_band_hz"]
    assert 5000 <= lo < 8000 < hi and card["adapt"]["envelope_band_moved_hz"] == [lo, hi]
    assert card["adapt"]["envelope_band_moved_by"] == "power"  # the housing alone rings there
    assert f"envelope band moved to {lo / 1000:g}-{hi / 1000:g} kHz" in out
    assert card["spectrum"]["psd_max_hz"] == 5000.0  # the PSD bins stay what the backbone means

    test = ringing_line(tmp_path / "test", 20, 1000)
    table = test / "labels.csv"
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    x = np.load(test / rows[0]["vibration"]).astype(np.float64)  # part 0 from a 12.8 kHz sensor
    np.save(test / rows[0]["vibration"], resample_poly(x, 1, 2).astype(np.float32))
    rows[0]["sample_rate_hz"] = "12800"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = tmp_path / "m.json"
    assert main(["evaluate", *argv, "--data", str(test), "--json", str(report)]) == 0
    m = json.loads(report.read_text())
    assert m["n"] == 20 and m["n_fault"] == 1
    reason = m["faults"][0]["reason"]
    assert "12800 Hz is too low" in reason and f"envelope band {lo:g}-{hi:g} Hz" in reason
    assert m["auroc"] > 0.8


def test_an_engineer_sets_the_envelope_band_and_a_band_the_sensor_cannot_measure_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    argv = ["adapt", "--home", str(home), "--line", "stiff", "--no-progress", "--samples", "20"]
    train = ringing_line(tmp_path / "train", 24, 0)
    assert (
        main([*argv, "--data", str(train), "--method", "linear", "--envelope-band", "7000-9500"])
        == 0
    )
    out = capsys.readouterr().out
    card = json.loads((home / "lines" / "stiff" / "v1" / "line.json").read_text())
    assert card["spectrum"]["env_band_hz"] == [7000.0, 9500.0]
    assert card["adapt"]["envelope_band_given_hz"] == [7000.0, 9500.0]
    assert "envelope band set to 7-9.5 kHz (--envelope-band)" in out
    assert main([*argv, "--data", str(train), "--envelope-band", "9000-13000"]) == 1
    err = capsys.readouterr().err
    assert "envelope band 9000-13000 Hz needs vibration sampled at 28889 Hz or more" in err
    assert "slowest part is sampled at 25600 Hz" in err
    with pytest.raises(SystemExit):
        main([*argv, "--data", str(train), "--envelope-band", "9000"])
    assert "expected LOW-HIGH in Hz" in capsys.readouterr().err
    assert sorted(p.name for p in (home / "lines" / "stiff").iterdir()) == ["ACTIVE", "v1"]


@pytest.mark.slow
def test_where_a_second_mode_rings_nearly_as_much_the_labeled_faults_move_the_band(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Line 303's second mode (4.8 kHz) leaves the 8 kHz housing's band only 1.3 times the
    default band's power: its good parts alone keep 2-5 kHz, its labeled outer-race faults,
    which stand out in the housing's band only, move it there."""
    data = vibration_line(
        tmp_path / "d", 30, 0, ("bearing_outer",), seed=303, duration_s=0.5, housing_hz=8000.0
    )
    home = tmp_path / "home"
    argv = ["adapt", "--home", str(home), "--line", "l", "--no-progress", "--data", str(data)]
    assert main([*argv, "--method", "linear", "--samples", "30"]) == 0
    card = json.loads((home / "lines" / "l" / "v1" / "line.json").read_text())
    lo, hi = card["adapt"]["envelope_band_moved_hz"]
    assert lo < 8000 < hi and card["adapt"]["envelope_band_moved_by"] == "labeled parts"
    assert "the labeled defective parts' vibration stands out" in capsys.readouterr().out
