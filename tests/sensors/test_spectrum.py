"""Spectrum features: shape, invariance to sample rate and unit, order normalization, refusals,
configs fitted to rates below 10 kHz (and real CWRU faults resampled to 8 and 6 kHz)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sensors.spectrum import (
    SpectrumConfig,
    _noise_level,
    envelope_outliers,
    envelope_spectrum,
    spectrum_features,
    welch_psd,
)

CONFIG = SpectrumConfig()


def machine(
    fs: float,
    seconds: float = 1.0,
    fault_hz: float = 97.0,
    seed: int = 0,
    top_hz: float = 5900.0,
    resonance_hz: float = 3500.0,
    pulse_s: float = 3e-4,
) -> np.ndarray:
    """The same band-limited continuous-time signal sampled at `fs` (all of it below 6 kHz): a
    broadband floor, a shaft line, and a 3.5 kHz resonance rung by impacts `fault_hz` apart.
    (`top_hz`, `resonance_hz`, `pulse_s`: the floor's top, the resonance, the impacts' width.)"""
    rng = np.random.default_rng(seed)
    n = round(seconds * fs)
    t = np.arange(n) / fs
    # floor: every whole-Hz line from 20 Hz to top_hz with random phase, built exactly by irfft
    spectrum = np.zeros(n // 2 + 1, dtype=np.complex128)
    lines = np.arange(round(20 * seconds), round(top_hz * seconds))
    spectrum[lines] = np.exp(1j * rng.uniform(0, 2 * np.pi, lines.size)) / np.sqrt(lines / 20)
    floor = np.fft.irfft(spectrum, n) * n * 0.002
    shaft = 0.3 * np.sin(2 * np.pi * 29.95 * t)
    impacts = np.arange(0.0, seconds + 0.01, 1.0 / fault_hz) + 0.0023
    pulses = np.exp(-0.5 * ((t[:, None] - impacts[None, :]) / pulse_s) ** 2).sum(axis=1)
    return floor + shaft + 1.5 * pulses * np.sin(2 * np.pi * resonance_hz * t)


def slow_machine(fs: float, fault_hz: float = 97.0, seed: int = 0) -> np.ndarray:
    """`machine` with everything below 3.5 kHz (a 2.5 kHz resonance, wider impacts), so that
    8 kHz sampling holds all of it: the same continuous-time signal at any rate from 7.2 kHz."""
    return machine(fs, 1.0, fault_hz, seed, top_hz=3500.0, resonance_hz=2500.0, pulse_s=5e-4)


def test_shape_dtype_and_single_window() -> None:
    batch = np.stack([machine(12000, seed=s) for s in range(3)])
    out = spectrum_features(batch, 12000)
    assert out.shape == (3, 2, CONFIG.n_bins) and out.dtype == np.float32
    assert np.isfinite(out).all()
    single = spectrum_features(batch[1], 12000)
    assert single.shape == (1, 2, CONFIG.n_bins)
    np.testing.assert_allclose(single[0], out[1], atol=1e-5)  # a batch is just many windows


@pytest.mark.parametrize("fs", [25600.0, 48000.0])
def test_same_signal_at_another_rate_gives_the_same_features(fs: float) -> None:
    reference = spectrum_features(machine(12000), 12000)[0]
    other = spectrum_features(machine(fs), fs)[0]
    assert np.abs(other - reference).max() < 0.02, np.abs(other - reference).max()
    assert np.corrcoef(other.ravel(), reference.ravel())[0, 1] > 0.995


def test_same_tone_lands_in_the_same_bin_at_12k_and_25k6() -> None:
    bins = []
    for fs in (12000.0, 25600.0):
        t = np.arange(round(fs)) / fs
        x = np.sin(2 * np.pi * 1234.0 * t) + 0.001 * np.sin(2 * np.pi * 4321.0 * t)
        features = spectrum_features(x, fs)[0, 0]
        bins.append(int(np.argmax(features)))
    bin_hz = CONFIG.psd_max_hz / CONFIG.n_bins
    assert bins[0] == bins[1] == int(1234.0 // bin_hz)


def test_unit_does_not_matter() -> None:
    g = machine(25600, fault_hz=140.0)
    np.testing.assert_allclose(
        spectrum_features(g, 25600), spectrum_features(9.80665 * g, 25600), atol=1e-4
    )


def test_fault_raises_its_envelope_bin() -> None:
    faulty = spectrum_features(machine(12000, fault_hz=107.0), 12000)[0, 1]
    bin_hz = CONFIG.env_max_hz / CONFIG.n_bins
    k = int(107.0 // bin_hz)
    assert faulty[k] > 3.0  # standardized: several spreads above the floor
    assert int(np.argmax(faulty[5:])) + 5 in (k, 2 * k, 2 * k + 1)


def test_order_normalization_holds_the_fault_peak_across_speeds() -> None:
    peaks_hz, peaks_orders = [], []
    for rpm in (1500.0, 1800.0):
        fault_hz = 3.585 * rpm / 60.0
        x = machine(25600, fault_hz=fault_hz)
        peaks_hz.append(int(np.argmax(spectrum_features(x, 25600)[0, 1, 5:])))
        by_order = spectrum_features(x, 25600, rpm=rpm)[0, 1, 5:]
        peaks_orders.append(int(np.argmax(by_order)))
    assert peaks_hz[0] != peaks_hz[1]
    assert peaks_orders[0] == peaks_orders[1]
    per_row = spectrum_features(np.stack([machine(25600)] * 2), 25600, rpm=np.array([1500, 1800]))
    assert not np.allclose(per_row[0, 1], per_row[1, 1])  # one rpm per row


def test_envelope_spectrum_finds_the_impact_rate() -> None:
    freqs, amplitude = envelope_spectrum(machine(25600, fault_hz=162.0), 25600)
    band = (freqs > 20) & (freqs < 500)
    assert freqs[band][np.argmax(amplitude[band])] == pytest.approx(162.0, abs=1.0)
    freqs_b, batch = envelope_spectrum(np.stack([machine(25600)] * 2), 25600)
    assert batch.shape == (2, freqs_b.size)


# Features of `machine` under the default config, as lines taught before `psd_cutoff_hz`
# existed computed them (bins 0, 17, 40, 63, 90, 101, 120, 127 of each channel)
TAUGHT_BEFORE = {
    (12000, None): [
        [5.23626, 0.05085, -0.51346, -0.80433, -1.04439, 3.04313, -1.20748, -0.89814],
        [-3.73734, -2.82357, -3.92719, -2.6828, -3.49745, -3.79313, -3.35014, -3.63719],
    ],
    (25600, 1797.0): [
        [5.23626, 0.05085, -0.51346, -0.80433, -1.04439, 3.04313, -1.20748, -0.89814],
        [-3.72354, -2.39316, -3.02618, -3.42588, -2.81617, -4.60406, -3.52229, -3.61562],
    ],
}


@pytest.mark.parametrize(("fs", "rpm"), list(TAUGHT_BEFORE))
def test_at_10k_and_above_nothing_changes(fs: float, rpm: float | None) -> None:
    for rate in (10000.0, 12000.0, 25600.0, 48000.0):
        assert CONFIG.fit_sample_rate(rate) is CONFIG  # the very same config, not a copy
    fitted = CONFIG.fit_sample_rate(fs)
    features = spectrum_features(machine(fs), fs, rpm, fitted)[0]
    picked = features[:, [0, 17, 40, 63, 90, 101, 120, 127]]
    np.testing.assert_allclose(picked, TAUGHT_BEFORE[(fs, rpm)], rtol=0, atol=2e-5)


def test_a_line_json_written_before_the_cut_off_reads_and_writes_the_same() -> None:
    before = {
        "psd_bins": 128,
        "psd_max_hz": 5000.0,
        "welch_segment_s": 0.1,
        "env_bins": 128,
        "env_band_hz": [2000.0, 5000.0],
        "env_max_hz": 500.0,
        "env_max_order": 16.0,
        "band_edge_hz": 100.0,
        "psd_scale": 0.7,
        "env_scale": 0.5,
        "window_s": 1.0,
    }
    config = SpectrumConfig.from_dict(before)
    assert config == CONFIG and config.psd_cutoff_hz is None
    assert config.to_dict() == before  # no new key: cache keys and exports made from it hold
    fitted = CONFIG.fit_sample_rate(8000)
    assert SpectrumConfig.from_dict(fitted.to_dict()) == fitted


def test_a_config_fitted_to_8k_measures_what_8k_holds() -> None:
    fitted = CONFIG.fit_sample_rate(8000)
    assert fitted.psd_cutoff_hz == pytest.approx(3600.0)  # 90 % of the Nyquist frequency
    assert fitted.env_band_hz == pytest.approx((1440.0, 3600.0))
    assert fitted.band_edge_hz == 100.0  # 3700 Hz, under the 4 kHz Nyquist frequency
    assert fitted.min_sample_rate_hz() <= 8000
    assert (fitted.psd_max_hz, fitted.n_bins) == (CONFIG.psd_max_hz, CONFIG.n_bins)  # same Hz
    assert fitted.psd_measured_bins == 92  # 92 x 39.06 Hz = 3594 Hz
    assert fitted.describe() == "spectra use 0-3.6 kHz, envelope band 1.4-3.6 kHz"
    assert fitted.fit_sample_rate(8000) is fitted
    features = spectrum_features(slow_machine(8000), 8000, None, fitted)[0]
    psd = features[0]
    assert np.isfinite(features).all()
    assert np.all(psd[92:] == psd[:92].min())  # the unmeasured bins: the quietest measured
    assert np.median(psd[:92]) == pytest.approx(0.0, abs=1e-6)  # standardized on measured ones


@pytest.mark.parametrize("fs", [12000.0, 25600.0, 48000.0])
def test_on_a_line_fitted_to_8k_a_faster_part_gives_the_same_features(fs: float) -> None:
    fitted = CONFIG.fit_sample_rate(8000)
    reference = spectrum_features(slow_machine(8000), 8000, None, fitted)[0]
    other = spectrum_features(slow_machine(fs), fs, None, fitted)[0]
    assert np.abs(other - reference).max() < 0.02, np.abs(other - reference).max()
    assert np.corrcoef(other.ravel(), reference.ravel())[0, 1] > 0.995
    with_rpm = spectrum_features(slow_machine(fs), fs, 1797.0, fitted)[0]
    at_8k = spectrum_features(slow_machine(8000), 8000, 1797.0, fitted)[0]
    assert np.abs(with_rpm - at_8k).max() < 0.02


def test_a_fitted_line_still_finds_the_fault_and_its_noise_reference() -> None:
    fitted = CONFIG.fit_sample_rate(8000)
    faulty = spectrum_features(slow_machine(8000, fault_hz=107.0), 8000, None, fitted)[0, 1]
    k = int(107.0 // (fitted.env_max_hz / fitted.n_bins))
    assert faulty[k] > 3.0
    # the envelope channel's 0 is Gaussian noise, measured for the fitted band
    noise = np.random.default_rng(5).standard_normal((4, 8000))
    level = spectrum_features(noise, 8000, None, fitted)[:, 1, 1:].mean()
    assert abs(level) < 0.15, level


@pytest.mark.parametrize("fs", [4000.0, 5000.0, 6000.0, 7000.0, 9999.0])
def test_fitting_covers_common_industrial_rates(fs: float) -> None:
    fitted = CONFIG.fit_sample_rate(fs)
    assert fitted.min_sample_rate_hz() <= fs
    assert fitted.env_band_hz[1] + fitted.band_edge_hz <= fs / 2  # the taper under Nyquist
    x = np.random.default_rng(0).standard_normal(round(fs))
    assert np.isfinite(spectrum_features(x, fs, 1797.0, fitted)).all()  # 16 orders fit
    assert np.isfinite(spectrum_features(x, fs, 3600.0, fitted)).all()  # and at 3600 rpm


def test_refusals_name_the_problem() -> None:
    with pytest.raises(ValueError, match="too low"):
        spectrum_features(np.zeros(8000), 8000)
    fitted = CONFIG.fit_sample_rate(8000)
    with pytest.raises(ValueError, match=r"4000 Hz is too low .* at least 7200 Hz"):
        spectrum_features(np.zeros(4000), 4000, None, fitted)
    with pytest.raises(ValueError, match="too low for the envelope spectrum"):
        CONFIG.fit_sample_rate(1000)
    with pytest.raises(ValueError, match="at least 2 must be measured"):
        SpectrumConfig(psd_cutoff_hz=50.0)
    with pytest.raises(ValueError, match="too short"):
        spectrum_features(np.zeros(1000), 12000)
    x = machine(12000)
    x[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        spectrum_features(x, 12000)
    with pytest.raises(ValueError, match="rpm"):
        spectrum_features(machine(12000), 12000, rpm=-5)
    with pytest.raises(ValueError, match="must be equal"):
        SpectrumConfig(psd_bins=64, env_bins=128)


def windows_of(x: np.ndarray, fs: float, seconds: float) -> np.ndarray:
    """`x` cut into consecutive windows of `seconds` (what a fast line gives each part)."""
    n = round(seconds * fs)
    return np.stack([x[i * n : (i + 1) * n] for i in range(len(x) // n)])


def test_windows_of_02_s_and_longer_keep_the_config() -> None:
    for seconds in (0.2, 0.25, 1.0, 10.0):
        assert CONFIG.fit_window(seconds) is CONFIG  # the very same config, not a copy
    fitted = CONFIG.fit_window(0.04)
    assert fitted.welch_segment_s == pytest.approx(0.02)
    assert fitted.min_window_s() == pytest.approx(0.04)
    assert (fitted.psd_max_hz, fitted.env_max_hz, fitted.n_bins) == (5000.0, 500.0, 128)
    assert fitted.fit_window(0.04) is fitted
    assert SpectrumConfig.from_dict(fitted.to_dict()) == fitted
    assert fitted.describe_resolution() == "Welch segments of 0.02 s (50 Hz resolution)"


@pytest.mark.parametrize("n", [1023, 1024, 1279, 2001])
def test_a_fitted_config_takes_a_window_of_the_length_it_was_fitted_to(n: int) -> None:
    fs = 25600.0
    fitted = CONFIG.fit_window(n / fs)  # the segment is rounded down: the window still holds two
    x = np.random.default_rng(n).standard_normal(n)
    assert np.isfinite(spectrum_features(x, fs, None, fitted)).all()
    with pytest.raises(ValueError, match="too short"):
        spectrum_features(x[: n // 2], fs, None, fitted)


@pytest.mark.parametrize("seconds", [0.02, 0.04, 0.1])
def test_short_windows_still_show_the_fault_line_and_read_noise_as_zero(seconds: float) -> None:
    fs = 25600.0
    fitted = CONFIG.fit_window(seconds)
    at_97 = spectrum_features(windows_of(machine(fs, 1.0, 97.0), fs, seconds), fs, None, fitted)
    at_220 = spectrum_features(windows_of(machine(fs, 1.0, 220.0), fs, seconds), fs, None, fitted)
    k97, k220 = (int(hz // (fitted.env_max_hz / fitted.n_bins)) for hz in (97.0, 220.0))
    # each machine's envelope is strongest at its own impact rate, in every window
    assert np.all(at_97[:, 1, k97] > at_220[:, 1, k97] + 2.0)
    if seconds >= 0.04:  # at 50 Hz resolution, 97 Hz's second harmonic (194 Hz) reaches 220
        assert np.all(at_220[:, 1, k220] > at_97[:, 1, k220] + 1.0)
    # the envelope's 0 stays Gaussian noise: its reference is measured in windows this short
    noise = np.random.default_rng(1).standard_normal((40, round(seconds * fs)))
    level = spectrum_features(noise, fs, None, fitted)[:, 1, 1:].mean()
    assert abs(level) < 0.1, level


# the envelope's noise reference of configs with windows of 0.2 s and longer, as computed
# before short windows were fitted (eight windows of noise each)
NOISE_BEFORE = {0.25: -0.470016217671797, 0.5: -0.40333050563070955, 1.0: -0.3727699422112598}


@pytest.mark.parametrize(("window_s", "level"), list(NOISE_BEFORE.items()))
def test_the_noise_reference_of_lines_taught_before_is_unchanged(
    window_s: float, level: float
) -> None:
    config = replace(CONFIG, window_s=window_s)  # as `adapt --window-s` sets it
    assert _noise_level(config) == pytest.approx(level, abs=1e-12)


def test_windows_under_20_ms_are_refused_naming_the_need() -> None:
    with pytest.raises(ValueError, match=r"0\.015 s are too short .* at least 0\.02 s"):
        CONFIG.fit_window(0.015)
    with pytest.raises(ValueError, match="positive"):
        CONFIG.fit_window(0.0)


def test_silence_is_finite() -> None:
    assert np.isfinite(spectrum_features(np.zeros((2, 12000)), 12000)).all()


def test_config_round_trips_through_json_fields() -> None:
    config = SpectrumConfig(psd_bins=64, env_bins=64, env_band_hz=(1500.0, 5500.0))
    assert SpectrumConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown SpectrumConfig fields"):
        SpectrumConfig.from_dict({"psd_bin": 64})


@pytest.mark.parametrize("nperseg", [1200, 1201, 2560])
def test_welch_matches_scipy(nperseg: int) -> None:
    from scipy import signal

    x = np.random.default_rng(1).standard_normal((3, 12000))
    x -= x.mean(axis=1, keepdims=True)
    freqs, expected = signal.welch(x, 12000, nperseg=nperseg, detrend=False, axis=1)
    ours_freqs, ours = welch_psd(x, 12000, nperseg)
    np.testing.assert_allclose(ours_freqs, freqs)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12 * expected.max())


@pytest.mark.parametrize(
    ("df", "max_hz", "n_bins"), [(1.0, 500.0, 128), (10.0, 5000.0, 128), (7.3, 300.0, 64)]
)
def test_binning_is_the_exact_band_average(df: float, max_hz: float, n_bins: int) -> None:
    from sensors.spectrum import _to_bins

    power = np.random.default_rng(2).random((3, int(max_hz / df) + 40))
    # reference: overlap of each FFT cell [k df - df/2, k df + df/2) with each bin, by brute force
    edges = np.linspace(0.0, max_hz, n_bins + 1)
    centers = np.arange(power.shape[1]) * df
    lo = np.maximum(centers[:, None] - df / 2, edges[None, :-1])
    hi = np.minimum(centers[:, None] + df / 2, edges[None, 1:])
    weights = np.clip(hi - lo, 0.0, None) / np.diff(edges)[None, :]
    np.testing.assert_allclose(_to_bins(power, df, max_hz, n_bins), power @ weights, rtol=1e-9)


@pytest.mark.realdata
@pytest.mark.parametrize(("fs", "inner_at_bpfi"), [(8000.0, 7), (6000.0, 4)])
def test_cwru_resampled_below_10k_keeps_its_fault_lines_in_the_fitted_band(
    cwru_folder: Path, fs: float, inner_at_bpfi: int
) -> None:
    """Real CWRU faults (12 kHz) resampled to 8 and 6 kHz, envelope in the fitted band: every
    diagnosable outer race still peaks at BPFO, and as many inner races at BPFI as measured
    (8 kHz: all but IR014_1/2, which peak at 3.0x shaft speed; 6 kHz: IR007 x3, IR021_0)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    from sensors.dataset import LineDataset

    band = CONFIG.fit_sample_rate(fs).env_band_hz
    ds = LineDataset.open(cwru_folder)
    ratio = Fraction(int(fs), 12000)
    near = {"inner_race": 0, "outer_race": 0}
    for i, row in enumerate(ds.rows):
        if row.label not in near or "OR014@6" in row.part_id:  # no BPFO line at any rate
            continue
        w = ds[i].vibration
        assert w is not None and w.rpm is not None and w.sample_rate_hz == 12000
        x = resample_poly(w.samples.astype(np.float64), ratio.numerator, ratio.denominator)
        freqs, amplitude = envelope_spectrum(x, fs, band_hz=band)
        window = (freqs > 40.0) & (freqs < 500.0)
        peak = float(freqs[window][np.argmax(amplitude[window])]) / (w.rpm / 60.0)
        order = 5.4152 if row.label == "inner_race" else 3.5848  # BPFI, BPFO (SKF 6205-2RS)
        near[row.label] += abs(peak / order - 1.0) < 0.02
    assert near == {"inner_race": inner_at_bpfi, "outer_race": 6}


def rung(
    fs: float,
    resonance_hz: float,
    seed: int = 0,
    fault_hz: float | None = None,
    other: float = 0.5,
) -> np.ndarray:
    """One second of a machine whose housing rings at `resonance_hz` (broadband forcing through
    a resonance of 2 % damping) beside another mode at 3 kHz that the bearing does not drive
    (`other`: its amplitude, the housing's 1); with `fault_hz`, impacts that far apart ring the
    housing too."""
    from scipy.signal import lfilter

    def mode(hz: float, forcing: np.ndarray) -> np.ndarray:
        w = 2 * np.pi * hz / fs
        r = np.exp(-0.02 * w)
        return lfilter([1.0 - r], [1.0, -2 * r * np.cos(w), r * r], forcing)

    rng = np.random.default_rng(seed)
    n = round(fs)
    forcing = rng.standard_normal(n)
    scale = mode(resonance_hz, forcing).std()
    if fault_hz is not None:
        forcing[(np.arange(0.0023, 1.0, 1.0 / fault_hz) * fs).astype(int)] += 10.0
    second = mode(3000.0, rng.standard_normal(n))
    return mode(resonance_hz, forcing) / scale + other * second / second.std()


def test_the_envelope_band_follows_a_machine_that_rings_above_it() -> None:
    fs = 25600.0
    good = [(rung(fs, 8000.0, seed), fs) for seed in range(6)]
    fitted = CONFIG.fit_resonance(good)
    lo, hi = fitted.env_band_hz
    assert lo < 8000.0 < hi and lo >= CONFIG.env_band_hz[1]  # moved clear of 2-5 kHz
    assert hi - lo == CONFIG.env_band_hz[1] - CONFIG.env_band_hz[0]
    assert fitted.psd_max_hz == CONFIG.psd_max_hz and fitted.min_sample_rate_hz() <= fs
    # a bearing fault on that machine: its impact rate shows in the fitted band's envelope only
    faulty = rung(fs, 8000.0, seed=9, fault_hz=107.0)
    k = int(107.0 // (CONFIG.env_max_hz / CONFIG.n_bins))
    assert spectrum_features(faulty, fs, config=fitted)[0, 1, k] > 3.0
    assert spectrum_features(faulty, fs, config=CONFIG)[0, 1, k] < 1.5
    assert SpectrumConfig.from_dict(fitted.to_dict()) == fitted  # saved with the line


def test_the_envelope_band_stays_where_the_machine_rings_in_it_or_cannot_be_measured() -> None:
    inside = [(rung(25600.0, 3500.0, seed), 25600.0) for seed in range(4)]
    assert CONFIG.fit_resonance(inside) == CONFIG  # CWRU's band already holds the ringing
    low_rate = [(rung(12000.0, 5200.0, seed), 12000.0) for seed in range(4)]
    assert CONFIG.fit_resonance(low_rate) == CONFIG  # nothing measured well above 5 kHz
    mixed = [(rung(25600.0, 8000.0), 25600.0), (rung(12000.0, 5200.0), 12000.0)]
    assert CONFIG.fit_resonance(mixed) == CONFIG  # the slowest sensor sets what is measured
    eight = [(rung(25600.0, 8000.0, seed), 25600.0) for seed in range(4)]
    assert CONFIG.fit_resonance(eight, lowest_rate_hz=12000.0) == CONFIG  # a defective part's
    assert CONFIG.fit_resonance([]) == CONFIG


def test_where_another_mode_holds_the_band_the_defective_parts_decide() -> None:
    """A 3 kHz mode of 0.8 the housing's amplitude keeps 2-5 kHz at 1 / 1.5 of the 8 kHz band's
    power: too close for the power alone. Labeled bearing faults among the defective parts
    (impacts ringing 8 kHz) stand out there and move the band; defective parts whose vibration
    is good (a fused line's image defects) move nothing."""
    fs = 25600.0
    good = [(rung(fs, 8000.0, seed, other=0.8), fs) for seed in range(25)]
    quiet = [(rung(fs, 8000.0, 100 + seed, other=0.8), fs) for seed in range(22)]
    faults = [(rung(fs, 8000.0, 200 + k, 97.0 + 5 * k, other=0.8), fs) for k in range(3)]
    assert CONFIG.fit_resonance(good) == CONFIG
    assert CONFIG.fit_resonance(good, defective=quiet) == CONFIG
    moved = CONFIG.fit_resonance(good, defective=quiet + faults)
    assert moved.env_band_hz[0] < 8000.0 < moved.env_band_hz[1]
    assert envelope_outliers(moved, good, quiet + faults) == 3
    assert envelope_outliers(CONFIG, good, quiet + faults) == 0


def test_an_envelope_band_given_by_hand_is_checked_against_the_sensor() -> None:
    given = CONFIG.with_envelope_band((6000.0, 9000.0), 25600.0)
    assert given.env_band_hz == (6000.0, 9000.0) and given.band_edge_hz == CONFIG.band_edge_hz
    faulty = rung(25600.0, 8000.0, seed=9, fault_hz=107.0)
    k = int(107.0 // (CONFIG.env_max_hz / CONFIG.n_bins))
    assert spectrum_features(faulty, 25600.0, config=given)[0, 1, k] > 3.0
    with pytest.raises(ValueError, match=r"needs vibration sampled at 20000 Hz or more; the "):
        CONFIG.with_envelope_band((6000.0, 9000.0), 12000.0)
    with pytest.raises(ValueError, match="too narrow"):
        CONFIG.with_envelope_band((6000.0, 6300.0), 25600.0)
    with pytest.raises(ValueError, match="0 < LOW < HIGH"):
        CONFIG.with_envelope_band((9000.0, 6000.0), 25600.0)
