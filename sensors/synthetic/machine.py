"""Vibration of a rotating machine measured while one part runs on it.

The signal is built from the physics an analyst looks for:
- shaft harmonics (1x, 2x, 3x) at a speed that differs a little from part to part and drifts
  within the window;
- gear mesh at `teeth x shaft speed`, amplitude-modulated by the shaft (sidebands at +-1x);
- broadband forces ringing the structure's resonances (1.5-5.5 kHz), plus sensor noise;
- bearing faults as impulse trains at BPFO / BPFI (from the bearing geometry) that excite the
  housing resonance; an inner-race defect rotates with the shaft through the load zone, so its
  impacts are amplitude-modulated at 1x;
- imbalance as a raised 1x; looseness as many harmonics, half orders and a clipped response;
- a cracked housing as a lower, less damped (sharper, longer ringing) housing resonance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.synthetic.spec import MachineSpec, Resonance


@dataclass(frozen=True)
class VibrationResult:
    """One synthesized window: samples in g, and the mean shaft speed a tachometer would read."""

    samples: np.ndarray  # float32 (N,)
    rpm: float


def resonator(x: np.ndarray, res: Resonance, sample_rate_hz: float) -> np.ndarray:
    """Response of a single structural mode to the force `x` (two-pole filter, unit peak gain)."""
    from scipy import signal  # slow to import; `inspect-app --help` reaches this module

    w = 2 * np.pi * res.freq_hz / sample_rate_hz
    r = np.exp(-res.damping * w)
    a = [1.0, -2 * r * np.cos(w), r * r]
    b = [(1 - r) * np.sqrt(1 - 2 * r * np.cos(2 * w) + r * r)]  # unit gain at the peak
    return np.asarray(signal.lfilter(b, a, x))


def synthesize_vibration(
    machine: MachineSpec,
    label: str,
    severity: float,
    sample_rate_hz: float,
    duration_s: float,
    rng: np.random.Generator,
) -> VibrationResult:
    """One window of acceleration for a part labeled `label` (defects not seen here are `ok`)."""
    n = round(sample_rate_hz * duration_s)
    t = np.arange(n) / sample_rate_hz
    fr0 = machine.shaft_hz * (1 + machine.rpm_jitter * rng.standard_normal())
    drift = machine.speed_drift * rng.uniform(-1, 1)
    wander = _smooth_walk(rng, n, sample_rate_hz, 0.002)
    fr = fr0 * (1 + drift * (t / duration_s - 0.5) + wander)
    phase = 2 * np.pi * np.cumsum(fr) / sample_rate_hz  # shaft angle, rad
    theta = rng.uniform(0, 2 * np.pi, 8)

    amps = np.array(machine.shaft_amps_g) * rng.uniform(0.85, 1.15, len(machine.shaft_amps_g))
    if label == "imbalance":
        amps[0] *= 1.6 + 4.0 * severity
    x = sum(a * np.sin((k + 1) * phase + theta[k]) for k, a in enumerate(amps))

    mod = 1 + machine.mesh_modulation * np.cos(phase + theta[3])
    z = machine.gear_teeth
    x = x + machine.mesh_amp_g * mod * (np.sin(z * phase) + 0.3 * np.sin(2 * z * phase + theta[4]))

    housing = machine.housing
    if label == "crack":
        # a crack lowers the housing's stiffness and its friction-free faces let it ring longer
        housing = Resonance(
            freq_hz=housing.freq_hz * (1 - 0.02 - 0.08 * severity),
            damping=housing.damping * (0.7 - 0.4 * severity),
            gain=housing.gain * (1.2 + 0.8 * severity),
        )
    force = rng.standard_normal(n) * machine.broadband_g * 6
    structure = resonator(force, housing, sample_rate_hz) * housing.gain
    for res in machine.resonances:
        structure += (
            resonator(rng.standard_normal(n) * machine.broadband_g * 6, res, sample_rate_hz)
            * res.gain
        )

    if label in ("bearing_outer", "bearing_inner"):
        structure += _bearing_impacts(machine, label, severity, phase, housing, sample_rate_hz, rng)
    if label == "looseness":
        x = _looseness(x, amps[0], severity, phase, rng)
        # the loose joint rattles: hard knocks every second turn, softer ones every turn
        cycles = phase / (2 * np.pi) + theta[5] / (2 * np.pi)
        knocks = _impulses_at(cycles, 0.5, 15 + 50 * severity, n, rng, 0.03)
        knocks += _impulses_at(cycles + 0.5, 1.0, 6 + 20 * severity, n, rng, 0.03)
        structure += resonator(knocks * machine.broadband_g * 6, housing, sample_rate_hz)

    x = x + structure + machine.sensor_noise_g * rng.standard_normal(n)
    rpm = float(np.mean(fr) * 60.0)
    return VibrationResult(samples=x.astype(np.float32), rpm=rpm)


def _smooth_walk(rng: np.random.Generator, n: int, fs: float, scale: float) -> np.ndarray:
    """A slow random speed wander (relative), band-limited to a few Hz."""
    knots = max(4, int(n / fs * 4) + 2)
    values = rng.standard_normal(knots) * scale
    return np.interp(np.linspace(0, knots - 1, n), np.arange(knots), values)


def _impulses_at(
    cycles: np.ndarray, order: float, amp: float, n: int, rng: np.random.Generator, slip: float
) -> np.ndarray:
    """Unit impulses each time `order x cycles` passes an integer, timed with random slip."""
    events = order * cycles
    k = np.arange(np.ceil(events[0]), np.floor(events[-1]) + 1)
    idx = np.searchsorted(events, k + slip * rng.standard_normal(k.shape))
    idx = idx[(idx > 0) & (idx < n)]
    out = np.zeros(n)
    np.add.at(out, idx, amp)
    return out


def _bearing_impacts(
    machine: MachineSpec,
    label: str,
    severity: float,
    phase: np.ndarray,
    housing: Resonance,
    fs: float,
    rng: np.random.Generator,
) -> np.ndarray:
    n = phase.shape[0]
    cycles = phase / (2 * np.pi)
    inner = label == "bearing_inner"
    order = machine.bearing.bpfi_order if inner else machine.bearing.bpfo_order
    amp = 6.0 + 34.0 * severity**1.5  # impulse strength in units of the broadband force
    kicks = _impulses_at(cycles + rng.uniform(0, 1), order, amp, n, rng, slip=0.015)
    kicks *= 1 + 0.25 * rng.standard_normal(n) * (kicks > 0)  # impact-to-impact variation
    if inner:
        # the defect turns with the shaft and is struck hard only in the load zone
        zone = np.cos(phase + rng.uniform(0, 2 * np.pi))
        kicks *= 0.55 + 0.45 * zone
    return resonator(kicks * machine.broadband_g * 6, housing, fs) * housing.gain


def _looseness(
    x: np.ndarray,
    a1: float,
    severity: float,
    phase: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    strength = 0.3 + 0.7 * severity
    harmonics = sum(
        a1 * strength * 0.6 / k**0.7 * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        for k in range(2, 11)
    )
    halves = sum(
        a1 * strength * 0.4 / k * np.sin((k - 0.5) * phase + rng.uniform(0, 2 * np.pi))
        for k in range(1, 5)
    )
    y = x + harmonics + halves
    # a loose foot lifts on one side only: the response is truncated on that side
    limit = np.percentile(y, 100 - 15 * strength)
    return np.minimum(y, limit)
