"""The verdict for one part: PASS / FAIL / FAULT, the defect class, scores and where the defect is.

Pure computation on a `BackendResult` and the line's card (classes and threshold). The one
threshold rule of the product lives here: a part FAILs when its defect score reaches the line's
threshold. A part that could not be inspected (sensor fault, unreadable data, backend error, a
non-finite model output) is FAULT, never PASS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from scipy import ndimage

from inspect_app.backends.base import BackendResult

VerdictName = Literal["PASS", "FAIL", "FAULT"]
VERDICTS: tuple[VerdictName, ...] = ("PASS", "FAIL", "FAULT")

BOX_LEVEL = 0.5
"""The defect box is the heat-map region at or above this fraction of its peak, around the peak."""


class DecisionCard(Protocol):
    """What a decision needs from the line model's card: its defect classes and threshold."""

    @property
    def classes(self) -> Sequence[str]: ...

    @property
    def threshold(self) -> float: ...


@dataclass(frozen=True)
class Verdict:
    """The decision on one part. `box` is (x0, y0, x1, y1) in 0..1 of the frame, for FAIL only."""

    verdict: VerdictName
    defect_class: str | None = None
    defect_score: float | None = None
    anomaly_score: float | None = None
    class_probs: dict[str, float] = field(default_factory=dict)
    box: tuple[float, float, float, float] | None = None
    fault_reason: str | None = None

    @property
    def rejected(self) -> bool:
        """True when the part must leave the line (FAIL or FAULT)."""
        return self.verdict != "PASS"


def fault(reason: str) -> Verdict:
    """The verdict for a part that could not be inspected."""
    if not reason:
        msg = "a FAULT verdict needs a reason naming the file or stage and the problem"
        raise ValueError(msg)
    return Verdict(verdict="FAULT", fault_reason=reason)


FAULT_CAUSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("frozen feed (a reading repeats the part before it)", ("identical, sample for sample",)),
    ("dropped: the inspection fell behind the camera", ("fell behind the camera",)),
    ("camera dark, covered or blinded (uniform frame)", ("image is uniform",)),
    ("vibration sensor disconnected (flat window)", ("vibration is flat",)),
    ("vibration sensor overloaded (clipped window)", ("vibration clipped",)),
    (
        "a sensor's reading missing",
        ("no image", "no vibration", "no frame", "empty image", "empty vibration"),
    ),
    ("part did not register (misplaced, another product, camera moved)", ("registered",)),
    ("NaN or infinite values", ("NaN", "finite")),
    ("preprocessing failed", ("preprocess failed",)),
    ("model error", ("backend error",)),
    (
        "unreadable, incomplete or malformed file",
        ("file", "truncated", "corrupt", "malformed", "unreadable", "WAV", "not a "),
    ),
    ("camera lost or timed out", ("camera", "video", "timed out", "timeout")),
)
"""FAULT reasons by cause, for reports: the first cause one of whose phrases the reason holds
(`fault_cause`). The reasons themselves name the file or source and say more."""


def fault_cause(reason: str | None) -> str:
    """The cause a FAULT reason belongs to (`FAULT_CAUSES`), "other" when none matches."""
    text = reason or ""
    for cause, phrases in FAULT_CAUSES:
        if any(phrase in text for phrase in phrases):
            return cause
    return "other"


def defect_box(heatmap: np.ndarray, level: float = BOX_LEVEL) -> tuple[float, float, float, float]:
    """The box around the heat-map's peak: the connected region at or above `level` × peak.

    `heatmap` is (h, w); the box is (x0, y0, x1, y1) as fractions of the frame's width/height.
    """
    if heatmap.ndim != 2 or heatmap.size == 0:
        msg = f"heat-map must be a non-empty (h, w) array, got shape {heatmap.shape}"
        raise ValueError(msg)
    h, w = heatmap.shape
    peak_index = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    peak = float(heatmap[peak_index])
    mask = heatmap >= level * peak if peak > 0 else np.ones_like(heatmap, dtype=bool)
    regions, _ = ndimage.label(mask)
    ys, xs = np.nonzero(regions == regions[peak_index])
    return (
        float(xs.min()) / w,
        float(ys.min()) / h,
        float(xs.max() + 1) / w,
        float(ys.max() + 1) / h,
    )


def decide(result: BackendResult, card: DecisionCard) -> Verdict:
    """The verdict for a batch of one part (use `decide_batch` for more)."""
    if len(result) != 1:
        msg = f"decide() takes the result of one part, got a batch of {len(result)}"
        raise ValueError(msg)
    return decide_batch(result, card)[0]


def decide_batch(result: BackendResult, card: DecisionCard) -> list[Verdict]:
    """One verdict per part of the batch, in order."""
    classes = list(card.classes)
    threshold = float(card.threshold)
    if not np.isfinite(threshold):
        msg = f"line threshold must be a finite number, got {card.threshold!r}"
        raise ValueError(msg)
    if result.class_probs.shape[1] != len(classes):
        msg = (
            f"model returned {result.class_probs.shape[1]} class probabilities but the line has "
            f"{len(classes)} defect classes {classes}"
        )
        raise ValueError(msg)
    finite = result.finite_rows()
    verdicts = []
    for i in range(len(result)):
        if not finite[i]:
            verdicts.append(fault("model output is not a finite number (NaN or inf)"))
            continue
        score = float(result.defect_score[i])
        probs = {c: float(p) for c, p in zip(classes, result.class_probs[i], strict=True)}
        anomaly = float(result.anomaly_score[i])
        if score < threshold:
            verdicts.append(
                Verdict("PASS", defect_score=score, anomaly_score=anomaly, class_probs=probs)
            )
            continue
        # A defect never labeled for this line still fails; it just has no class name.
        defect_class = classes[int(np.argmax(result.class_probs[i]))] if classes else None
        verdicts.append(
            Verdict(
                "FAIL",
                defect_class=defect_class,
                defect_score=score,
                anomaly_score=anomaly,
                class_probs=probs,
                box=defect_box(result.heatmap[i]),
            )
        )
    return verdicts
