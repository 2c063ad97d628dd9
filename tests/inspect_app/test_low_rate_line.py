"""A vibration-only line sampled at 8 kHz: adapt fits its spectra to the rate, saves them in
line.json, and evaluate uses them; a part sampled too slowly for them is a FAULT naming rates."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from inspect_app.cli import main
from inspect_app.lines import load_line_model
from inspect_app.preprocess import prepare_batch
from sensors.dataset import LineDataset
from sensors.sample import Sample, VibrationWindow
from sensors.spectrum import SpectrumConfig
from tests.inspect_app.small_lines import vibration_line

DRAWN_AT = 24000  # the generator needs 12 kHz or more; the line's sensor is slower


pytestmark = pytest.mark.usefixtures("small_teach_backbone")


def slow_line(folder: Path, parts: int, start: int, rates: dict[int, int]) -> Path:
    """Parts `start`.. of a synthetic vibration-only line, each resampled from 24 kHz to the
    rate `rates` gives its row (default 8 kHz; a rate of 24 kHz keeps the part as drawn)."""
    classes = ("bearing_outer", "imbalance")
    vibration_line(folder, parts, start, classes, sample_rate_hz=DRAWN_AT, duration_s=0.5)
    table = folder / "labels.csv"
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        rate = rates.get(i, 8000)
        ratio = Fraction(rate, DRAWN_AT)
        path = folder / row["vibration"]
        x = np.load(path).astype(np.float64)
        np.save(path, resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32))
        row["sample_rate_hz"] = str(rate)
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.mark.slow
def test_a_line_sampled_at_8k_is_taught_on_fitted_spectra_and_evaluated_with_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    train = slow_line(tmp_path / "train", 40, 0, {})
    argv = ["--home", str(home), "--line", "slow", "--no-progress"]
    assert main(["adapt", *argv, "--data", str(train), "--samples", "30"]) == 0
    out = capsys.readouterr().out
    assert "vibration sampled at 8 kHz: spectra use 0-3.6 kHz, envelope band 1.4-3.6 kHz" in out

    fitted = SpectrumConfig(psd_bins=32, env_bins=32).fit_sample_rate(8000)
    card = json.loads((home / "lines" / "slow" / "v1" / "line.json").read_text())
    assert card["spectrum"]["psd_cutoff_hz"] == pytest.approx(3600.0)
    assert card["spectrum"]["env_band_hz"] == pytest.approx([1440.0, 3600.0])
    assert card["adapt"]["spectrum_fitted_to_hz"] == 8000
    model_card = (home / "lines" / "slow" / "v1" / "MODEL_CARD.md").read_text()
    assert "vibration sampled at 8 kHz: spectra use 0-3.6 kHz" in model_card
    model, loaded, _ = load_line_model(home, "slow")
    assert loaded.spectrum_config() == fitted

    # part 0 sampled at 4 kHz (too slow for 0-3.6 kHz); parts 1 (bearing_outer) and 2 (ok) at
    # 24 kHz: a faster sensor on the same line
    test = slow_line(tmp_path / "test", 20, 1000, {0: 4000, 1: DRAWN_AT, 2: DRAWN_AT})
    report = tmp_path / "m.json"
    assert main(["evaluate", *argv, "--data", str(test), "--json", str(report)]) == 0
    m = json.loads(report.read_text())
    assert m["n"] == 20 and m["n_fault"] == 1
    reason = m["faults"][0]["reason"]
    assert "synth-7-001000" in reason and "4000 Hz is too low" in reason and "7200 Hz" in reason
    assert m["auroc"] > 0.8  # the line works on its fitted spectra

    # the 24 kHz parts are measured on the line's band: as if their sensor sampled at 8 kHz
    ds = LineDataset.open(test)
    fast = [ds[1], ds[2]]
    assert [s.label for s in fast] == ["bearing_outer", "ok"]
    ratio = Fraction(8000, DRAWN_AT)
    slow = []
    for part in fast:
        v = part.vibration
        assert v is not None and v.sample_rate_hz == DRAWN_AT
        x = resample_poly(v.samples.astype(np.float64), ratio.numerator, ratio.denominator)
        slow.append(Sample(part.part_id, vibration=VibrationWindow(x, 8000.0, rpm=v.rpm)))
    inputs = prepare_batch(fast + slow, loaded)
    assert inputs.spectrum is not None
    torch.testing.assert_close(inputs.spectrum[:2], inputs.spectrum[2:], atol=0.1, rtol=0)
    with torch.no_grad():
        scores = model(**inputs.as_kwargs()).defect_score
    torch.testing.assert_close(scores[:2], scores[2:], atol=0.02, rtol=0)
    assert scores[0] >= loaded.threshold  # the fault fails at either rate
    # and each part gets the verdict its 8 kHz twin gets
    assert [bool(s >= loaded.threshold) for s in scores[:2]] == [
        bool(s >= loaded.threshold) for s in scores[2:]
    ]
