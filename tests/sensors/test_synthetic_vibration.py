"""Synthetic vibration faults carry their physics: characteristic frequencies where expected."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from sensors.spectrum import envelope_spectrum
from sensors.synthetic import VIBRATION_CLASSES, LineSpec, make_part

LINES = (7, 15, 52)


def _spec(seed: int) -> LineSpec:
    return LineSpec.from_seed(seed, modalities=("vibration",), classes=VIBRATION_CLASSES)


def _peak(freqs: np.ndarray, amp: np.ndarray, hz: float, tol: float = 0.02) -> float:
    near = np.abs(freqs - hz) <= tol * hz + (freqs[1] - freqs[0])
    return float(amp[near].max())


@pytest.mark.parametrize("seed", LINES)
@pytest.mark.parametrize(("label", "order"), [("bearing_outer", "bpfo"), ("bearing_inner", "bpfi")])
def test_bearing_fault_shows_at_its_defect_frequency(seed: int, label: str, order: str) -> None:
    spec = _spec(seed)
    ratio = getattr(spec.machine.bearing, f"{order}_order")
    part = make_part(spec, 1, label, severity=0.6)
    good = make_part(spec, 1)
    assert part.vibration is not None and good.vibration is not None
    fault_hz = ratio * part.rpm / 60
    freqs, amp = envelope_spectrum(part.vibration, part.sample_rate_hz)
    _, amp_good = envelope_spectrum(good.vibration, good.sample_rate_hz)
    band = (freqs > 0.3 * fault_hz) & (freqs < 1.5 * fault_hz)
    strongest = freqs[band][np.argmax(amp[band])]
    assert abs(strongest - fault_hz) <= 0.02 * fault_hz + freqs[1], (strongest, fault_hz)
    assert _peak(freqs, amp, fault_hz) > 4 * _peak(freqs, amp_good, fault_hz)


@pytest.mark.parametrize("seed", LINES)
def test_inner_race_impacts_are_modulated_by_the_shaft(seed: int) -> None:
    spec = _spec(seed)
    part = make_part(spec, 2, "bearing_inner", severity=0.8)
    assert part.vibration is not None
    freqs, amp = envelope_spectrum(part.vibration, part.sample_rate_hz)
    fr, fi = part.rpm / 60, spec.machine.bearing.bpfi_order * part.rpm / 60
    floor = float(np.median(amp[(freqs > 5) & (freqs < 500)]))
    assert _peak(freqs, amp, fi + fr, 0.01) > 3 * floor
    assert _peak(freqs, amp, fi - fr, 0.01) > 3 * floor


@pytest.mark.parametrize("seed", LINES)
def test_imbalance_raises_the_running_speed_line(seed: int) -> None:
    spec = _spec(seed)
    good, bad = make_part(spec, 3), make_part(spec, 3, "imbalance", severity=0.3)
    assert good.vibration is not None and bad.vibration is not None

    def one_x(part_vibration: np.ndarray, rpm: float) -> float:
        f, p = signal.welch(part_vibration, spec.sample_rate_hz, nperseg=len(part_vibration))
        return float(p[np.abs(f - rpm / 60) < 3].sum())

    assert one_x(bad.vibration, bad.rpm) > 4 * one_x(good.vibration, good.rpm)


@pytest.mark.parametrize("seed", LINES)
def test_looseness_adds_harmonics_and_half_orders(seed: int) -> None:
    spec = _spec(seed)
    good, bad = make_part(spec, 4), make_part(spec, 4, "looseness", severity=0.5)
    assert good.vibration is not None and bad.vibration is not None
    fr = bad.rpm / 60

    def order_power(x: np.ndarray, orders: list[float]) -> float:
        f, p = signal.welch(x, spec.sample_rate_hz, nperseg=len(x))
        return float(sum(p[np.abs(f - k * fr) < 2].sum() for k in orders))

    halves = [0.5, 1.5, 2.5, 3.5]
    harmonics = [4.0, 5.0, 6.0, 7.0, 8.0]
    assert order_power(bad.vibration, halves) > 5 * order_power(good.vibration, halves)
    assert order_power(bad.vibration, harmonics) > 3 * order_power(good.vibration, harmonics)


@pytest.mark.parametrize("seed", LINES)
def test_crack_lowers_the_housing_resonance(seed: int) -> None:
    spec = LineSpec.from_seed(seed, classes=("crack",))
    housing = spec.machine.housing.freq_hz
    good, bad = make_part(spec, 5), make_part(spec, 5, "crack", severity=0.7)
    assert good.vibration is not None and bad.vibration is not None

    def resonance_peak(x: np.ndarray) -> float:
        f, p = signal.welch(x, spec.sample_rate_hz, nperseg=4096)
        near = (f > 0.8 * housing) & (f < 1.05 * housing)
        return float(f[near][np.argmax(p[near])])

    assert abs(resonance_peak(good.vibration) - housing) < 0.02 * housing
    assert resonance_peak(bad.vibration) < 0.96 * housing
