"""One synthetic part of a line: its label, camera frame, defect mask and vibration window.

`make_part(spec, index, label)` is deterministic: the same line, index and label always give the
same arrays. Defects a sensor cannot see leave that sensor's signal as for a good part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.sample import OK_LABEL
from sensors.synthetic.catalog import IMAGE, VIBRATION, visible_in
from sensors.synthetic.defects import PAINTERS, missing_feature_mask
from sensors.synthetic.machine import synthesize_vibration
from sensors.synthetic.scene import photograph, render_part_layer
from sensors.synthetic.spec import LineSpec

_LAYOUT, _IMAGE, _VIBRATION, _LABELS, _SEVERITY, _DEFECT, _CAMERA = 1, 2, 3, 4, 5, 6, 7


@dataclass(frozen=True)
class SyntheticPart:
    """One generated part. `image`/`vibration` are None when the line lacks that sensor."""

    index: int
    part_id: str
    label: str
    severity: float  # 0..1 for a defect (1 = obvious), 0 for a good part
    image: np.ndarray | None  # uint8 (S, S, 3) RGB
    mask: np.ndarray | None  # bool (S, S), only when the defect is visible in the image
    vibration: np.ndarray | None  # float32 (N,), acceleration in g
    sample_rate_hz: float
    rpm: float
    timestamp_s: float  # seconds after the line's start


def _rng(spec: LineSpec, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([spec.seed, *keys]))


def make_part(
    spec: LineSpec, index: int, label: str = OK_LABEL, severity: float | None = None
) -> SyntheticPart:
    """Generate part number `index` of the line with the given label.

    `severity` (0..1) overrides the drawn defect strength. The part is the same physical part
    whatever its label: a defective part and the good part with the same index differ only by
    the defect (same surface, pose, lighting, noise and machine run).
    """
    if label != OK_LABEL and label not in spec.classes:
        msg = f"label {label!r} is not a class of line {spec.name}; expected ok or {spec.classes}"
        raise ValueError(msg)
    if index < 0:
        msg = f"part index must be non-negative, got {index}"
        raise ValueError(msg)
    if severity is not None and not 0 <= severity <= 1:
        msg = f"severity must be within 0..1, got {severity}"
        raise ValueError(msg)
    if label == OK_LABEL:
        severity = 0.0
    elif severity is None:
        lo, hi = spec.severity
        # skewed toward subtle: most defects are small, a few are obvious
        severity = float(lo + (hi - lo) * _rng(spec, _SEVERITY, index).beta(1.3, 1.8))

    image = mask = None
    if IMAGE in spec.modalities:
        image, mask = _image(spec, index, label, severity)
    vibration = None
    rpm = spec.machine.rpm
    if VIBRATION in spec.modalities:
        vib_label = label if visible_in(label, VIBRATION) else OK_LABEL
        result = synthesize_vibration(
            spec.machine,
            vib_label,
            severity,
            spec.sample_rate_hz,
            spec.duration_s,
            _rng(spec, _VIBRATION, index),
        )
        vibration, rpm = result.samples, result.rpm
    return SyntheticPart(
        index=index,
        part_id=f"{spec.name}-{index:06d}",
        label=label,
        severity=severity,
        image=image,
        mask=mask,
        vibration=vibration,
        sample_rate_hz=spec.sample_rate_hz,
        rpm=rpm,
        timestamp_s=index * spec.cycle_s,
    )


def _image(
    spec: LineSpec, index: int, label: str, severity: float
) -> tuple[np.ndarray, np.ndarray | None]:
    rng = _rng(spec, _DEFECT, index)
    geometry = spec.geometry
    omit = None
    if label == "missing_feature":
        omit = int(rng.integers(len(geometry.features)))
    layer = render_part_layer(
        geometry,
        spec.surface,
        spec.image_size,
        _rng(spec, _LAYOUT),
        _rng(spec, _IMAGE, index),
        omit=omit,
    )
    defect = None
    if omit is not None:
        defect = missing_feature_mask(layer, omit)
    elif visible_in(label, IMAGE):
        defect = PAINTERS[label](layer, severity, rng)
    photo = photograph(layer, geometry, spec.surface.gloss, defect, _rng(spec, _CAMERA, index))
    return photo.image, photo.mask


def draw_labels(
    spec: LineSpec, parts: int, defect_fraction: float, start_index: int = 0
) -> list[str]:
    """Labels for `parts` parts: `round(defect_fraction * parts)` defects spread evenly over the
    line's classes (every class present when there are enough defects), in a seeded order."""
    if not 0 <= defect_fraction <= 1:
        msg = f"defect_fraction must be within 0..1, got {defect_fraction}"
        raise ValueError(msg)
    if parts < 0:
        msg = f"parts must be non-negative, got {parts}"
        raise ValueError(msg)
    rng = _rng(spec, _LABELS, start_index, parts)
    n_bad = round(defect_fraction * parts)
    order = list(rng.permutation(spec.classes))
    labels = [str(order[i % len(order)]) for i in range(n_bad)] + [OK_LABEL] * (parts - n_bad)
    return [labels[i] for i in rng.permutation(parts)]
