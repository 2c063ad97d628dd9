"""The one type that carries a part from the sensors to the rest of the program."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape, type and values, sample for sample: a sensor that read the same twice (a
    live one never does). A spread-out 32 x 32 probe is compared first, so two different
    readings (nearly always) cost a thousand comparisons, not the whole frame."""
    if a is b:
        return True
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    probe = tuple(slice(None, None, max(1, n // 32)) for n in a.shape[:2])
    return bool(np.array_equal(a[probe], b[probe]) and np.array_equal(a, b))


@dataclass(frozen=True)
class VibrationWindow:
    """A window of accelerometer samples with the rate they were taken at.

    `samples` is 1-D float32 (acceleration, any unit; CWRU is in g). `rpm` is the shaft speed
    when known, used for order normalization of the spectrum.
    """

    samples: np.ndarray
    sample_rate_hz: float
    rpm: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.samples.ndim != 1:
            where = self.source or "<memory>"
            msg = f"vibration window from {where} must be 1-D, got shape {self.samples.shape}"
            raise ValueError(msg)
        if not np.isfinite(self.sample_rate_hz) or self.sample_rate_hz <= 0:
            where = self.source or "<memory>"
            msg = (
                f"vibration window from {where}: sample rate must be a positive number of Hz, "
                f"got {self.sample_rate_hz!r}"
            )
            raise ValueError(msg)

    @property
    def duration_s(self) -> float:
        return float(self.samples.shape[0]) / float(self.sample_rate_hz)


@dataclass
class Sample:
    """One part as the sensors saw it.

    `frame` is an RGB uint8 image (H, W, 3) or None when the line has no camera or the frame was
    lost; `vibration` likewise. `label` is `ok` or a defect class slug when known. `mask` is the
    defect mask (H, W) bool when known. `fault` is set, with a reason naming the file and the
    problem, when the part could not be read: such a part must never be passed as good.
    `mask_problem` is set instead when only its mask (ground truth, not a sensor reading) could
    not be read: the part is inspected as any other, only the pixel metrics lack it.
    """

    part_id: str
    frame: np.ndarray | None = None
    vibration: VibrationWindow | None = None
    timestamp: float = 0.0
    label: str | None = None
    mask: np.ndarray | None = None
    fault: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    mask_problem: str | None = None

    def reading_digest(self) -> str | None:
        """A fingerprint of what the sensors read (the frame's pixels, the vibration window's
        samples and rate), the same for two copies of one part under any names or folders;
        None when the part has no reading. Not a security hash: 80 bits, to find repeats."""
        if self.frame is None and self.vibration is None:
            return None
        digest = hashlib.blake2b(digest_size=10)
        for values in (self.frame, None if self.vibration is None else self.vibration.samples):
            if values is None:
                digest.update(b"-")
                continue
            digest.update(f"{values.dtype.str}{values.shape}".encode())
            digest.update(np.ascontiguousarray(values).tobytes())
        if self.vibration is not None:
            digest.update(repr(float(self.vibration.sample_rate_hz)).encode())
        return digest.hexdigest()

    @property
    def is_defective(self) -> bool | None:
        """True for a labeled defect, False for a labeled good part, None when unlabeled."""
        if self.label is None:
            return None
        return self.label != OK_LABEL


OK_LABEL = "ok"
