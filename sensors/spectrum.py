"""Vibration spectra on fixed physical-frequency bins, so any sample rate gives the same features.

Two channels per window, both on `n_bins` bins:

- channel 0: log Welch power spectral density over 0..`psd_max_hz` (where structural
  resonances, gear mesh and looseness show);
- channel 1: log envelope spectrum over 0..`env_max_hz` (or 0..`env_max_order` shaft orders when
  the rpm is known): the signal is band-passed around a structural resonance (`env_band_hz`), its
  Hilbert envelope taken, and the envelope's spectrum computed. Bearing faults are trains of
  impulses that ring the resonance; their repetition rate (BPFO, BPFI, ...) shows here.

Why it is rate-invariant: the Welch segment is fixed in seconds (so the frequency resolution is the
same at 12 kHz and 25.6 kHz), the PSD is a density, and both spectra are averaged into bins whose
edges are in Hz (or orders), not in FFT indices. The envelope is computed from the band's Fourier
coefficients moved to base band, on a time grid set by the window's duration alone, so the
sample rate does not enter it at all.

Below 10 kHz (many industrial sensors sample at 5-8 kHz) a line's config is fitted to the rate
of its adapt parts (`SpectrumConfig.fit_sample_rate`): the PSD bins stay in Hz, because the
backbone's spectrum tokens mean those frequencies, but only those below 90 % of the Nyquist
frequency are measured (`psd_cutoff_hz`); the others read as the quietest measured bin, for every
part of the line whatever its own rate. The envelope band moves below the cut-off.

Why this standardization (both channels are in no unit: g or m/s² give the same features):
- PSD: `log10` turns sensor sensitivity, unit and mounting into an offset; subtracting each
  window's median over (measured) bins removes it. What is left is the spectrum's shape
  (resonances, mesh lines, the floor's tilt); absolute level is unknowable across unknown units.
- envelope: the envelope's fluctuation power is divided by its squared mean, which makes it the
  modulation depth, a ratio, and keeps what matters for bearings: how strongly impacts modulate
  the resonance, not only where the peaks are. Its log is offset so that Gaussian noise (broadband
  vibration without impacts) is 0: good CWRU windows average -0.8, faulty ones +0.5 to +0.9.
- each channel is divided by a fixed spread (`psd_scale`, `env_scale`: the across-bin spread of
  good CWRU windows), never by a per-window one, which would shrink the peaks a fault raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import signal

# A floor under every power value before the log, relative to the window's largest bin: keeps
# silent channels and exact zeros (e.g. a band above a resampled signal's Nyquist) finite.
_DYNAMIC_RANGE = 1e-12
_FLOOR = 1e-12  # the envelope channel's floor (it is relative already)
# A config fitted to a low sample rate (`SpectrumConfig.fit_sample_rate`) measures up to this
# share of the Nyquist frequency, where a DAQ's anti-aliasing filter has not yet cut in, and
# puts the envelope band over its upper part, as (2000, 5000) Hz sits under a 5 kHz range.
USABLE_NYQUIST = 0.9
ENV_BAND_LOW = 0.4
# `SpectrumConfig.fit_resonance`: the good parts' power is searched for a band of the envelope
# band's width from this frequency up (shaft, mesh and their harmonics lie below it) ...
RESONANCE_SEARCH_FROM_HZ = 2000.0
RESONANCE_STEP_HZ = 250.0  # ... in steps of this ...
# ... and the envelope band moves only to a band clear of its own that holds this many times
# its power: where a machine's structure rings, the bearing's impacts ring it too
RESONANCE_POWER_RATIO = 2.0
# A clear band holding between 1 and `RESONANCE_POWER_RATIO` times the power is ambiguous (a
# second mode may hold the band where the bearing rings): with defective adapt parts, the band
# moves when at least this many of them stand out beyond every good part in it, and more than
# twice as many as in the current band (`envelope_outliers`)
OUTLIERS_TO_MOVE = 2
# The shortest Welch segment a config fitted to short windows uses (`SpectrumConfig.fit_window`):
# 100 Hz resolution, windows of 0.02 s. Below it the PSD's 39 Hz bins and the envelope's 0-500 Hz
# would hold fewer than a handful of independent values.
MIN_WELCH_SEGMENT_S = 0.01


@dataclass(frozen=True)
class SpectrumConfig:
    """How a vibration window becomes a (2, n_bins) feature map. Saved with each line model."""

    # channel 0: log Welch PSD
    psd_bins: int = 128
    psd_max_hz: float = 5000.0  # below CWRU's 6 kHz Nyquist; covers 1.5-5.5 kHz resonances mostly
    # bins above this are not measured (a line sampled below 2 x psd_max_hz); None: all are.
    # The bins stay where they are in Hz: the backbone's spectrum tokens mean those frequencies
    psd_cutoff_hz: float | None = None
    # 10 Hz resolution at any rate; shorter for a line whose windows are short (`fit_window`)
    welch_segment_s: float = 0.1
    # channel 1: log envelope spectrum
    env_bins: int = 128
    env_band_hz: tuple[float, float] = (2000.0, 5000.0)  # CWRU's bearing resonance band
    env_max_hz: float = 500.0  # BPFI and its first harmonic at 1800 rpm; 3.9 Hz bins
    env_max_order: float = 16.0  # with rpm: 0..16 shaft orders (BPFI 5.4x, 2xBPFI 10.8x)
    band_edge_hz: float = 100.0  # cosine taper at each band edge (no brick-wall ringing)
    # standardization: (log10 power - window median) / scale
    psd_scale: float = 0.7
    env_scale: float = 0.5
    # nominal window length (recordings are cut into it); any window of at least
    # `min_window_s()` works
    window_s: float = 1.0

    def __post_init__(self) -> None:
        if self.psd_bins != self.env_bins:
            msg = f"psd_bins ({self.psd_bins}) and env_bins ({self.env_bins}) must be equal"
            raise ValueError(msg)
        if self.psd_bins < 2:
            msg = f"psd_bins must be at least 2, got {self.psd_bins}"
            raise ValueError(msg)
        lo, hi = self.env_band_hz
        if not 0 < lo < hi:
            msg = f"env_band_hz must be (low, high) with 0 < low < high, got {self.env_band_hz}"
            raise ValueError(msg)
        if self.psd_cutoff_hz is not None and self.psd_measured_bins < 2:
            msg = (
                f"psd_cutoff_hz {self.psd_cutoff_hz} leaves {self.psd_measured_bins} PSD bins "
                f"of {self.psd_max_hz / self.psd_bins:g} Hz; at least 2 must be measured"
            )
            raise ValueError(msg)

    @property
    def n_bins(self) -> int:
        return self.psd_bins

    @property
    def psd_top_hz(self) -> float:
        """Where the measured PSD ends: `psd_max_hz`, or the cut-off below it."""
        if self.psd_cutoff_hz is None:
            return self.psd_max_hz
        return min(self.psd_max_hz, self.psd_cutoff_hz)

    @property
    def psd_measured_bins(self) -> int:
        """How many PSD bins, from 0 Hz, lie wholly below the cut-off (all of them without)."""
        if self.psd_top_hz >= self.psd_max_hz:
            return self.psd_bins
        # the small tolerance keeps a cut-off exactly on a bin edge from losing that bin
        return int(np.floor(self.psd_top_hz / (self.psd_max_hz / self.psd_bins) + 1e-9))

    def min_sample_rate_hz(self) -> float:
        """The lowest sample rate whose Nyquist frequency covers the PSD range and the band."""
        return 2.0 * max(self.psd_top_hz, self.env_band_hz[1])

    def fit_sample_rate(self, sample_rate_hz: float) -> SpectrumConfig:
        """This config for parts sampled at `sample_rate_hz`: itself when the rate is high
        enough (`min_sample_rate_hz`), else one that measures what such a rate holds.

        Fitted, the PSD keeps its bins in Hz but stops at the usable bandwidth, `USABLE_NYQUIST`
        of the Nyquist frequency (0.45 x the rate), and an envelope band above it is moved to
        (`ENV_BAND_LOW` x usable, usable), its edge taper kept under the Nyquist frequency. Its
        `min_sample_rate_hz()` is at most 0.9 x `sample_rate_hz`. ValueError when the band left
        is too narrow for the envelope channel's 0..`env_max_hz` (below about 1.4 kHz).
        """
        fs = float(sample_rate_hz)
        if not np.isfinite(fs) or fs <= 0:
            msg = f"sample_rate_hz must be a positive number of Hz, got {sample_rate_hz!r}"
            raise ValueError(msg)
        if fs >= self.min_sample_rate_hz():
            return self
        nyquist = fs / 2.0
        usable = USABLE_NYQUIST * nyquist
        cutoff = usable if usable < self.psd_top_hz else self.psd_cutoff_hz
        band = self.env_band_hz
        if band[1] > usable:
            band = (ENV_BAND_LOW * usable, usable)
        edge = min(self.band_edge_hz, nyquist - band[1])
        reach = _envelope_reach_hz(band, edge, self.window_s)
        if reach < self.env_max_hz + 2.0 / self.window_s:
            msg = (
                f"sample rate {fs:g} Hz is too low for the envelope spectrum: its band "
                f"{band[0]:g}-{band[1]:g} Hz reaches {reach:g} Hz of envelope frequencies, and "
                f"the envelope channel spans 0-{self.env_max_hz:g} Hz"
            )
            raise ValueError(msg)
        return replace(self, psd_cutoff_hz=cutoff, env_band_hz=band, band_edge_hz=edge)

    def fit_resonance(
        self,
        windows: Sequence[tuple[np.ndarray, float]],
        lowest_rate_hz: float | None = None,
        defective: Sequence[tuple[np.ndarray, float]] = (),
    ) -> SpectrumConfig:
        """`resonance_fit`'s config."""
        return self.resonance_fit(windows, lowest_rate_hz, defective)[0]

    def resonance_fit(
        self,
        windows: Sequence[tuple[np.ndarray, float]],
        lowest_rate_hz: float | None = None,
        defective: Sequence[tuple[np.ndarray, float]] = (),
    ) -> tuple[SpectrumConfig, str | None]:
        """This config with its envelope band moved to where the good parts' `windows` (samples,
        rate) ring, when that is clearly elsewhere; else itself. `lowest_rate_hz`: the lowest
        sample rate among all the line's parts (defective ones too), when lower than the
        windows'. `defective`: the defective adapt parts' windows, which settle an ambiguous
        band (below).

        A bearing's impacts show in the envelope of the band where they ring the structure.
        The default band (2-5 kHz) is where CWRU's test rig rings; a machine whose housing
        rings at 8 kHz (a small bearing, a stiff housing) leaves it nothing but noise to
        demodulate. Where every part measures above the band (the lowest rate's usable
        bandwidth, `USABLE_NYQUIST` of its Nyquist frequency, reaches half a band width past
        it), their mean power spectrum, each window's normalized to its own total from
        `RESONANCE_SEARCH_FROM_HZ` up, is searched for the band of the same width with the most
        power; the band moves there when that band does not overlap the current one and holds
        `RESONANCE_POWER_RATIO` times its power. Power alone cannot tell which mode a bearing
        rings: where the best band clear of the current one holds between 1 and that many times
        its power, the band moves there only if `OUTLIERS_TO_MOVE` or more of the `defective`
        windows' envelopes stand out beyond every good one's there, and more than twice as
        many as in the current band (`envelope_outliers`).
        The PSD channel is unchanged (its bins are what the backbone's spectrum tokens mean);
        the envelope channel is a modulation depth, the same quantity in any band.

        With the config, what moved the band: "power", "labeled parts", or None where it stays.
        """
        if not windows:
            return self, None
        fs = min([float(rate) for _, rate in windows] + [lowest_rate_hz or np.inf])
        usable = USABLE_NYQUIST * fs / 2.0
        lo, hi = self.env_band_hz
        width = hi - lo
        if usable < hi + width / 2.0:
            return self, None
        step = RESONANCE_STEP_HZ
        edges = np.arange(RESONANCE_SEARCH_FROM_HZ, usable + 1e-9, step)  # cells of `step` Hz
        mean = np.zeros(edges.size - 1)
        for x, rate in windows:
            x = np.asarray(x, dtype=np.float64).reshape(1, -1)
            x = x - x.mean()
            nperseg = min(x.shape[1], round(self.welch_segment_s * float(rate)))
            freqs, psd = welch_psd(x, float(rate), nperseg)
            cells = np.histogram(freqs, edges, weights=psd[0])[0]
            total = cells.sum()
            if total > 0:
                mean += cells / total
        per_band = round(width / step)
        if mean.sum() <= 0 or per_band > mean.size:
            return self, None
        power = np.convolve(mean, np.ones(per_band), mode="valid")  # band starting at each cell
        starts = edges[: power.size]
        current = mean[(edges[:-1] >= lo) & (edges[1:] <= hi)].sum()
        clear = (starts >= hi) | (starts + width <= lo)
        if not clear.any():
            return self, None
        best = int(np.argmax(np.where(clear, power, -np.inf)))
        new_lo = float(starts[best])
        new_hi = new_lo + width
        moved = replace(
            self, env_band_hz=(new_lo, new_hi), band_edge_hz=min(self.band_edge_hz, fs / 2 - new_hi)
        )
        if power[best] >= power.max() and power[best] >= RESONANCE_POWER_RATIO * current:
            return moved, "power"  # the structure rings most, and clearly, elsewhere
        if power[best] < current or not defective:
            return self, None
        here = envelope_outliers(self, windows, defective)
        there = envelope_outliers(moved, windows, defective)
        if there >= max(OUTLIERS_TO_MOVE, 2 * here + 1):
            return moved, "labeled parts"
        return self, None

    def with_envelope_band(
        self, band_hz: tuple[float, float], lowest_rate_hz: float | None = None
    ) -> SpectrumConfig:
        """This config demodulating `band_hz` (low, high), as an engineer who knows where the
        machine's bearing rings sets it (`adapt --envelope-band`). ValueError, saying what is
        needed, when the band is not (low, high) with 0 < low < high, lies above what parts
        sampled at `lowest_rate_hz` measure (`USABLE_NYQUIST` of its Nyquist frequency), or is
        too narrow for the envelope channel's 0..`env_max_hz`."""
        lo, hi = (float(v) for v in band_hz)
        if not 0 < lo < hi:
            msg = f"envelope band must be LOW-HIGH in Hz with 0 < LOW < HIGH, got {lo:g}-{hi:g}"
            raise ValueError(msg)
        nyquist = np.inf if lowest_rate_hz is None else float(lowest_rate_hz) / 2.0
        if hi > USABLE_NYQUIST * nyquist:
            msg = (
                f"envelope band {lo:g}-{hi:g} Hz needs vibration sampled at "
                f"{2 * hi / USABLE_NYQUIST:.0f} Hz or more; the slowest part is sampled at "
                f"{lowest_rate_hz:g} Hz"
            )
            raise ValueError(msg)
        edge = min(self.band_edge_hz, nyquist - hi)
        reach = _envelope_reach_hz((lo, hi), edge, self.window_s)
        if reach < self.env_max_hz + 2.0 / self.window_s:
            msg = (
                f"envelope band {lo:g}-{hi:g} Hz is too narrow: it reaches {reach:g} Hz of "
                f"envelope frequencies, and the envelope channel spans 0-{self.env_max_hz:g} Hz"
            )
            raise ValueError(msg)
        return replace(self, env_band_hz=(lo, hi), band_edge_hz=edge)

    def min_window_s(self) -> float:
        """The shortest vibration window these spectra take: two Welch segments."""
        return 2.0 * self.welch_segment_s

    def fit_window(self, seconds: float) -> SpectrumConfig:
        """This config for parts whose vibration windows last `seconds`: itself when they hold
        two Welch segments (`min_window_s`), else one whose segments are half that long.

        A fast line may give each part only tens of milliseconds of vibration (an impact or a
        ring test, a part passing a sensor). Fitted, the PSD and the envelope keep their bins
        in Hz, which the backbone's spectrum tokens mean, and are measured coarser: segments of
        0.02 s resolve 50 Hz, where the bins are 39 Hz wide (PSD) and 3.9 Hz (envelope); each
        bin is still the exact band average of what the window resolves. The segment is
        rounded down to 0.1 ms, so every window at least `seconds` long fits; `window_s`
        becomes `seconds`, so the envelope's noise reference is measured in such windows.
        ValueError below `2 * MIN_WELCH_SEGMENT_S` (0.02 s).
        """
        s = float(seconds)
        if not np.isfinite(s) or s <= 0:
            msg = f"window length must be a positive number of seconds, got {seconds!r}"
            raise ValueError(msg)
        if s >= self.min_window_s():
            return self
        segment = np.floor(s / 2.0 * 1e4 + 1e-6) / 1e4
        if segment < MIN_WELCH_SEGMENT_S:
            msg = (
                f"vibration windows of {s:.4g} s are too short for the spectra: they need at "
                f"least {2 * MIN_WELCH_SEGMENT_S:g} s (two Welch segments of "
                f"{MIN_WELCH_SEGMENT_S:g} s, {1 / MIN_WELCH_SEGMENT_S:g} Hz resolution)"
            )
            raise ValueError(msg)
        return replace(self, welch_segment_s=float(segment), window_s=s)

    def describe_resolution(self) -> str:
        """The PSD's frequency resolution, in words (for a line fitted to short windows)."""
        return (
            f"Welch segments of {self.welch_segment_s:g} s "
            f"({1 / self.welch_segment_s:.3g} Hz resolution)"
        )

    def describe(self) -> str:
        """What the two channels measure, in words (for adapt's report and the model card)."""
        lo, hi = self.env_band_hz
        return f"spectra use 0-{_khz(self.psd_top_hz)} kHz, envelope band {_khz(lo)}-{_khz(hi)} kHz"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (for line.json). A cut-off that is not set is left out, so
        the configs of lines sampled at 10 kHz or more are written as before it existed."""
        out = asdict(self)
        out["env_band_hz"] = list(self.env_band_hz)
        if self.psd_cutoff_hz is None:
            del out["psd_cutoff_hz"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpectrumConfig:
        """Inverse of `to_dict`; unknown keys are refused, naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            msg = f"unknown SpectrumConfig fields {unknown}; expected some of {sorted(names)}"
            raise ValueError(msg)
        kwargs = dict(data)
        if "env_band_hz" in kwargs:
            lo, hi = kwargs["env_band_hz"]
            kwargs["env_band_hz"] = (float(lo), float(hi))
        return cls(**kwargs)


def envelope_outliers(
    config: SpectrumConfig,
    good: Sequence[tuple[np.ndarray, float]],
    defective: Sequence[tuple[np.ndarray, float]],
) -> int:
    """How many `defective` windows' envelopes stand out beyond every `good` window's: each
    window scores the mean of its 8 largest rises over the good windows' per-bin mean, in
    per-bin spreads (floored at 0.05), a good window against the others only; a defective
    window counts when it scores above the highest good one by as much again as that sits
    above the good windows' median. A count, not an AUROC: on a fused line most defective
    parts are image defects whose vibration is good, and they count in no band."""
    if len(good) < 3 or not defective:
        return 0
    env_good = np.stack([spectrum_features(x, r, config=config)[0, 1] for x, r in good])
    env_bad = np.stack([spectrum_features(x, r, config=config)[0, 1] for x, r in defective])

    def score(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
        rise = (rows - reference.mean(0)) / np.maximum(reference.std(0), 0.05)
        return np.sort(rise, axis=-1)[..., -8:].mean(-1)

    loo = np.array([score(env_good[i], np.delete(env_good, i, axis=0)) for i in range(len(good))])
    # beyond the good parts' range by as much again as their highest sits above their median:
    # a few good windows' highest is itself a chance value, and a bar at it lets chance through
    bar = 2 * loo.max() - np.median(loo)
    return int((score(env_bad, env_good) > bar).sum())


def spectrum_features(
    samples: np.ndarray,
    sample_rate_hz: float,
    rpm: float | np.ndarray | None = None,
    config: SpectrumConfig | None = None,
) -> np.ndarray:
    """Standardized log PSD and log envelope spectrum, float32 `(B, 2, n_bins)`.

    `samples` is `(B, N)` or `(N,)`. With `rpm` (a number or one per row) the envelope channel is
    on shaft orders (0..`env_max_order`) instead of Hz, so a speed change does not move the
    bearing-fault peaks; the PSD channel stays in Hz because resonances do not move with speed.
    """
    config = config or SpectrumConfig()
    # float32 halves the FFT time; features are logs of band averages, far above its precision
    x = _as_batch(samples, np.float32)
    fs = _check_rate(sample_rate_hz, x.shape[1], config)
    x = x - x.mean(axis=1, keepdims=True)

    psd = _welch_binned(x, fs, config)  # (B, psd_measured_bins)
    env_freqs, env_power = _envelope_power(x, fs, config.env_band_hz, config.band_edge_hz)
    env = _envelope_binned(env_freqs, env_power, rpm, config, x.shape[0])

    out = np.empty((x.shape[0], 2, config.n_bins), dtype=np.float32)
    measured = psd.shape[1]
    out[:, 0, :measured] = _standardize(psd, config.psd_scale)
    if measured < config.n_bins:
        # Bins above the cut-off read as the quietest measured one ("nothing there"), whatever
        # the part's own rate: a part recorded faster than the line's rate looks the same
        out[:, 0, measured:] = out[:, 0, :measured].min(axis=1, keepdims=True)
    out[:, 1] = (np.log10(np.maximum(env, _FLOOR)) - _noise_level(config)) / config.env_scale
    return out


def envelope_spectrum(
    samples: np.ndarray,
    sample_rate_hz: float,
    band_hz: tuple[float, float] = (2000.0, 5000.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude envelope spectrum at the window's full resolution, for analysis and plots.

    Returns `(freqs_hz, amplitude)`: `freqs_hz` (F,), `amplitude` (F,) for 1-D input or (B, F)
    for a batch, in the input's unit (the envelope's one-sided amplitude; DC removed).
    """
    x = np.asarray(samples, dtype=np.float64)
    one = x.ndim == 1
    xb = _as_batch(x)
    fs = float(sample_rate_hz)
    if not np.isfinite(fs) or fs <= 0:
        msg = f"sample_rate_hz must be a positive number of Hz, got {sample_rate_hz!r}"
        raise ValueError(msg)
    if band_hz[1] >= fs / 2:
        msg = f"envelope band {band_hz} Hz reaches the Nyquist frequency {fs / 2:g} Hz"
        raise ValueError(msg)
    xb = xb - xb.mean(axis=1, keepdims=True)
    env = _baseband_envelope(xb, fs, band_hz, 100.0)
    env = env - env.mean(axis=1, keepdims=True)
    m = env.shape[1]
    duration = xb.shape[1] / fs
    amp = np.abs(sfft.rfft(env * np.hanning(m), axis=1)) * (2.0 / np.hanning(m).sum())
    freqs = np.arange(amp.shape[1]) / duration
    return freqs, (amp[0] if one else amp)


# --- internals -------------------------------------------------------------------------------


def _as_batch(samples: np.ndarray, dtype: type[np.floating] = np.float64) -> np.ndarray:
    x = np.asarray(samples, dtype=dtype)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        msg = f"samples must be (N,) or (B, N), got shape {x.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(x)):
        msg = "samples contain NaN or infinite values"
        raise ValueError(msg)
    return x


def _check_rate(sample_rate_hz: float, n: int, config: SpectrumConfig) -> float:
    fs = float(sample_rate_hz)
    if not np.isfinite(fs) or fs <= 0:
        msg = f"sample_rate_hz must be a positive number of Hz, got {sample_rate_hz!r}"
        raise ValueError(msg)
    if fs < config.min_sample_rate_hz():
        lo, hi = config.env_band_hz
        msg = (
            f"sample rate {fs:g} Hz is too low for these spectra: they need at least "
            f"{config.min_sample_rate_hz():g} Hz (PSD to {config.psd_top_hz:g} Hz, envelope "
            f"band {lo:g}-{hi:g} Hz)"
        )
        raise ValueError(msg)
    if n / fs < config.min_window_s():
        msg = (
            f"window of {n} samples ({n / fs:.3f} s) is too short: it needs at least "
            f"{config.min_window_s():g} s (two Welch segments)"
        )
        raise ValueError(msg)
    return fs


def _welch_binned(x: np.ndarray, fs: float, config: SpectrumConfig) -> np.ndarray:
    """(B, psd_measured_bins): the PSD's band averages on the config's bins below the cut-off."""
    freqs, psd = welch_psd(x, fs, round(config.welch_segment_s * fs))
    n = config.psd_measured_bins
    max_hz = config.psd_max_hz if n == config.n_bins else n * config.psd_max_hz / config.n_bins
    return _to_bins(psd, float(freqs[1] - freqs[0]), max_hz, n)


def welch_psd(x: np.ndarray, fs: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch's one-sided PSD (Hann, 50 % overlap, density scaling) of each row of `x` (B, N).

    The same estimate as `scipy.signal.welch(x, fs, nperseg=nperseg, detrend=False)`, three to
    five times faster on a batch: the segments are a strided view, one batched FFT, no copies
    for detrending (the caller removes the window's mean, which is all detrending did here).
    """
    step = nperseg - nperseg // 2  # scipy's default overlap is nperseg // 2
    n_segments = (x.shape[1] - nperseg) // step + 1
    window = _hann_periodic(nperseg)
    segments = np.lib.stride_tricks.sliding_window_view(x, nperseg, axis=1)[:, ::step]
    segments = segments[:, :n_segments] * window.astype(x.dtype)  # (B, S, nperseg)
    power = np.abs(sfft.rfft(segments, axis=2)) ** 2  # (B, S, F)
    psd = power.mean(axis=1) / (fs * float(np.sum(window**2)))
    psd[:, 1 : (nperseg + 1) // 2] *= 2.0  # one-sided: fold negative frequencies in
    return np.arange(psd.shape[1]) * (fs / nperseg), psd


def _baseband_envelope(
    x: np.ndarray, fs: float, band_hz: tuple[float, float], edge_hz: float
) -> np.ndarray:
    """|analytic band-passed signal|, sampled on a grid set by the duration, not by `fs`.

    The band's one-sided Fourier coefficients, shifted down to start at 0 Hz, are the spectrum of
    the analytic signal times a complex exponential, whose magnitude is the same: the envelope.
    """
    n = x.shape[1]
    duration = n / fs
    spec = sfft.rfft(x, axis=1)
    lo_k = int(np.floor((band_hz[0] - edge_hz) * duration))
    hi_k = int(np.ceil((band_hz[1] + edge_hz) * duration)) + 1
    lo_k = max(lo_k, 1)
    hi_k = min(hi_k, spec.shape[1] - 1)
    freqs = np.arange(lo_k, hi_k) / duration
    taper = _band_taper(freqs, band_hz, edge_hz)
    m = _baseband_length(band_hz, edge_hz, duration)
    z = np.zeros((x.shape[0], m), dtype=spec.dtype)
    z[:, : hi_k - lo_k] = spec[:, lo_k:hi_k] * taper.astype(x.dtype)
    # scale so the envelope is in the input's unit, whatever n and m are
    return np.abs(sfft.ifft(z, axis=1)) * (2.0 * m / n)


def _baseband_length(band_hz: tuple[float, float], edge_hz: float, duration: float) -> int:
    # twice the band width: the envelope's own spectrum then reaches past 1.5 kHz without folding
    width = band_hz[1] - band_hz[0] + 2 * edge_hz
    return int(sfft.next_fast_len(int(np.ceil(2 * width * duration))))


def _envelope_reach_hz(band_hz: tuple[float, float], edge_hz: float, duration: float) -> float:
    """The highest envelope frequency a window of `duration` s gives for this band."""
    return (_baseband_length(band_hz, edge_hz, duration) // 2) / duration


def _band_taper(freqs: np.ndarray, band_hz: tuple[float, float], edge_hz: float) -> np.ndarray:
    lo, hi = band_hz
    rise = np.clip((freqs - (lo - edge_hz)) / (2 * edge_hz), 0.0, 1.0)
    fall = np.clip(((hi + edge_hz) - freqs) / (2 * edge_hz), 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))


def _envelope_power(
    x: np.ndarray, fs: float, band_hz: tuple[float, float], edge_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum of the Hann-windowed envelope fluctuation, relative to the squared mean
    envelope (so the modulation depth, in no unit): (freqs_hz, (B, F))."""
    env = _baseband_envelope(x, fs, band_hz, edge_hz)
    mean = env.mean(axis=1, keepdims=True)
    m = env.shape[1]
    window = _hann(m)
    spectrum = sfft.rfft((env - mean) * window.astype(env.dtype), axis=1)
    tiny = np.finfo(np.float32).tiny
    power = np.abs(spectrum) ** 2 / (float(np.sum(window**2)) * np.maximum(mean**2, tiny))
    duration = x.shape[1] / fs
    return np.arange(power.shape[1]) / duration, power


def _envelope_binned(
    freqs: np.ndarray,
    power: np.ndarray,
    rpm: float | np.ndarray | None,
    config: SpectrumConfig,
    batch: int,
) -> np.ndarray:
    df = float(freqs[1] - freqs[0])
    if rpm is None:
        return _to_bins(power, df, config.env_max_hz, config.n_bins)
    rpms = np.broadcast_to(np.asarray(rpm, dtype=np.float64), (batch,))
    if not np.all(np.isfinite(rpms)) or np.any(rpms <= 0):
        msg = f"rpm must be positive numbers, got {rpm!r}"
        raise ValueError(msg)
    out = np.empty((batch, config.n_bins))
    for value in np.unique(rpms):
        rows = rpms == value
        max_hz = config.env_max_order * value / 60.0
        if max_hz > freqs[-1]:
            msg = (
                f"rpm {value:g}: {config.env_max_order:g} orders reach {max_hz:g} Hz, beyond the "
                f"envelope's {freqs[-1]:g} Hz; lower env_max_order or widen the envelope band"
            )
            raise ValueError(msg)
        out[rows] = _to_bins(power[rows], df, max_hz, config.n_bins)
    return out


def _to_bins(power: np.ndarray, df: float, max_hz: float, n_bins: int) -> np.ndarray:
    """(B, F) density on a df-spaced grid -> (B, n_bins) mean density over fixed Hz bins.

    FFT bin k stands for [k*df - df/2, k*df + df/2). The integral of that piecewise-constant
    density up to each bin edge is a cumulative sum plus a partial cell; differences of it over
    the edge spacing are exact band averages at any resolution. Gathers and one cumsum, no
    matrix product (a BLAS call here costs more in thread start-up than the arithmetic).
    """
    n_freqs = min(power.shape[1], int(np.ceil(max_hz / df)) + 2)
    cell, part = _edge_cells(n_freqs, df, max_hz, n_bins)
    p = power[:, :n_freqs].astype(np.float64)
    integral = np.zeros((p.shape[0], n_freqs + 1))
    np.cumsum(p * df, axis=1, out=integral[:, 1:])
    at_edges = integral[:, cell] + part * p[:, cell]  # (B, n_bins + 1)
    return np.diff(at_edges, axis=1) / (max_hz / n_bins)


@lru_cache(maxsize=64)
def _edge_cells(
    n_freqs: int, df: float, max_hz: float, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each bin edge: the FFT cell it falls in and how far (Hz) into that cell."""
    edges = np.linspace(0.0, max_hz, n_bins + 1)
    cell = np.clip(np.floor((edges + df / 2) / df).astype(np.int64), 0, n_freqs - 1)
    part = edges - (cell * df - df / 2)
    cell.setflags(write=False)
    part.setflags(write=False)
    return cell, part


@lru_cache(maxsize=16)
def _hann_periodic(m: int) -> np.ndarray:
    window = signal.get_window("hann", m)  # periodic, as scipy.signal.welch uses
    window.setflags(write=False)
    return window


@lru_cache(maxsize=16)
def _hann(m: int) -> np.ndarray:
    window = signal.get_window("hann", m)
    window.setflags(write=False)
    return window


@lru_cache(maxsize=8)
def _noise_level(config: SpectrumConfig) -> float:
    """The envelope channel's mean log level for Gaussian noise: the reference 0.

    Broadband noise without impacts has an envelope whose relative fluctuation spectrum depends
    only on the band, not on the level, unit or sample rate; it is the natural "no modulation"
    baseline. Measured once per config on fixed-seed noise (deterministic), in windows of the
    config's `window_s`: a window shorter than a bin's period leaves one noisy FFT line per bin,
    whose log reads lower than the log of a band average (by 0.25 for one line), and the
    reference must read alike. Eight windows, as every line taught before short windows were
    fitted measured it; 8 s of noise in all for a window under 0.2 s (`fit_window`).
    """
    rng = np.random.default_rng(0)
    fs = config.min_sample_rate_hz() * 1.28
    rows = 8 if config.window_s >= 0.2 else int(np.ceil(8.0 / config.window_s))
    x = rng.standard_normal((rows, round(config.window_s * fs))).astype(np.float32)
    freqs, power = _envelope_power(x, fs, config.env_band_hz, config.band_edge_hz)
    binned = _to_bins(power, float(freqs[1] - freqs[0]), config.env_max_hz, config.n_bins)
    return float(np.mean(np.log10(np.maximum(binned[:, 1:], _FLOOR))))


def _khz(hz: float) -> str:
    return f"{hz / 1000:.1f}".removesuffix(".0")


def _standardize(power: np.ndarray, scale: float) -> np.ndarray:
    floor = _DYNAMIC_RANGE * np.max(power, axis=1, keepdims=True) + np.finfo(np.float64).tiny
    logp = np.log10(np.maximum(power, floor))
    return (logp - np.median(logp, axis=1, keepdims=True)) / scale
