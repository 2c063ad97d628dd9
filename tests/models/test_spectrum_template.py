"""The spectrum template: the good parts' spectrum bin by bin, and a part's rise over it."""

from __future__ import annotations

import pytest
import torch

from models.adapt import AdaptConfig, AdaptData, adapt_line
from models.anomaly import MemoryConfig, PatchMemory
from models.backbone import InspectBackbone
from models.inputs import ModelInputs
from models.line_model import LineModel, LineModelSettings
from models.spectrum_template import SPREAD_FLOOR, SpectrumTemplate

BINS, BAND = 64, 8


def good_spectra(n: int, seed: int = 0) -> torch.Tensor:
    """Good parts: a fixed spectral shape, each bin a little different from part to part."""
    g = torch.Generator().manual_seed(seed)
    shape = torch.randn(2, BINS, generator=g)
    return shape + 0.3 * torch.randn(n, 2, BINS, generator=g)


def bands(spectra: torch.Tensor) -> torch.Tensor:
    """(B, 2, F) -> (B, F / BAND, 2 BAND), as the line model gives the spectrum memory."""
    b = spectra.reshape(spectra.shape[0], 2, BINS // BAND, BAND).permute(0, 2, 1, 3)
    return b.reshape(spectra.shape[0], BINS // BAND, 2 * BAND)


def test_raised_lines_stand_out_where_the_band_memory_dilutes_them() -> None:
    # a bearing fault's line and two harmonics in the envelope spectrum: one bin each, five
    # good-part spreads up
    train, test = good_spectra(30), good_spectra(40)[30:]
    faulty = test.clone()
    faulty[:, 1, [21, 42, 63]] += 5 * 0.3
    template = SpectrumTemplate(2, BINS, BAND)
    template.fit(train)
    memory = PatchMemory(2 * BAND, MemoryConfig(unit_length=False, position_weight=10.0))
    memory.fit(bands(train))
    t_good, t_bad = template(test).score, template(faulty).score
    m_good, m_bad = memory(bands(test)).score, memory(bands(faulty)).score
    assert float(t_bad.min()) > float(t_good.max())  # every faulty part above every good one
    assert float((t_bad - t_good).mean()) > 2 * float((m_bad - m_good).mean())
    # the bands that hold the lines are the hottest bands of each faulty part
    hottest = template(faulty).patch_scores.argmax(1)
    assert set(hottest.tolist()) <= {21 // BAND, 42 // BAND, 63 // BAND}


def test_a_fall_is_not_a_defect() -> None:
    # each window's spectrum is offset by its own median: one raised band lowers the rest a
    # little; a lowered bin alone must not fail a part
    train = good_spectra(30)
    test = good_spectra(40)[30:]
    lowered = test.clone()
    lowered[:, 0, 5] -= 10 * 0.3
    template = SpectrumTemplate(2, BINS, BAND)
    template.fit(train)
    torch.testing.assert_close(template(lowered).score, template(test).score)


def test_leave_out_scores_are_each_good_part_against_the_others() -> None:
    train = good_spectra(12)
    template = SpectrumTemplate(2, BINS, BAND)
    template.fit(train, torch.arange(12))
    assert template.leave_out is not None and template.leave_out.shape == (12,)
    center, scale = template.stats[:2]
    for i in (0, 7):
        others = SpectrumTemplate(2, BINS, BAND)
        others.fit(torch.cat([train[:i], train[i + 1 :]]))
        raw = others._excess(train[i : i + 1], others.mean, others.spread).score
        torch.testing.assert_close(template.leave_out[i], ((raw - center) / scale)[0])
    # standardized by their own leave-out scores: the median good part is at 0
    assert abs(float(template.leave_out.median())) < 1e-5


def test_a_bin_the_sensor_does_not_measure_cannot_fail_a_part() -> None:
    # a line sampled below twice the top frequency reads those bins as one constant
    train = good_spectra(20)
    train[:, 0, 40:] = -2.0
    template = SpectrumTemplate(2, BINS, BAND)
    template.fit(train)
    assert bool((template.spread[0, 40:] == SPREAD_FLOOR).all())
    test = good_spectra(25)[20:]
    test[:, 0, 40:] = -2.0 + 1e-4  # rounding
    assert float(template(test).score.max()) < 5.0


def test_shapes_and_bad_input_are_explained() -> None:
    template = SpectrumTemplate(2, BINS, BAND)
    template.fit(good_spectra(6))
    out = template(good_spectra(3))
    assert out.score.shape == (3,) and out.patch_scores.shape == (3, BINS // BAND)
    with pytest.raises(ValueError, match="multiple of the band width"):
        SpectrumTemplate(2, 60, BAND)
    with pytest.raises(ValueError, match=r"good-part spectra must be \(N>0, 2, 64\)"):
        template.fit(torch.zeros(4, 2, 32))
    few = SpectrumTemplate(2, BINS, BAND)
    few.fit(good_spectra(2))  # too few to leave one out: raw scores, no leave-out scores
    assert few.leave_out is None and few.stats.tolist() == [0.0, 1.0, 0.0, 1.0]


def test_a_line_with_vibration_is_taught_one_and_lines_taught_before_it_load_without(
    small_backbone_32: InspectBackbone,
) -> None:
    g = torch.Generator().manual_seed(0)
    spectrum = 0.3 * torch.randn(24, 2, 32, generator=g)
    labels = torch.tensor([0] * 16 + [1] * 8)
    spectrum[16:, 1, 9] += 3.0  # a fault's line
    present = torch.ones(24, dtype=torch.bool)
    data = AdaptData(ModelInputs(None, spectrum, None, present), labels, ["f"], ["vibration"])
    cfg = AdaptConfig(method="linear", folds=0, head_steps=20)
    model = adapt_line(small_backbone_32, data, cfg).model
    assert model.settings.spectrum_template and model.spectrum_template is not None
    assert "spectrum_template" in model.settings.anomaly_sources
    with torch.no_grad():
        scores = model.spectrum_template(spectrum).score
    assert float(scores[16:].min()) > float(scores[:16].max())
    before = model.settings.to_dict()
    del before["spectrum_template"]
    old = LineModel(small_backbone_32, LineModelSettings.from_dict(before))
    assert old.spectrum_template is None
