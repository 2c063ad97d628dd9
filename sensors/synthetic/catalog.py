"""The defect classes a synthetic line can have, and which sensor each one shows in.

A class shows in the image, in the vibration, or in both: a crack in the housing is seen by the
camera and also lowers and sharpens the housing's structural resonance.
"""

from __future__ import annotations

IMAGE = "image"
VIBRATION = "vibration"
MODALITIES: tuple[str, ...] = (IMAGE, VIBRATION)

CLASS_MODALITIES: dict[str, frozenset[str]] = {
    "scratch": frozenset({IMAGE}),
    "dent": frozenset({IMAGE}),
    "crack": frozenset({IMAGE, VIBRATION}),
    "stain": frozenset({IMAGE}),
    "missing_feature": frozenset({IMAGE}),
    "edge_chip": frozenset({IMAGE}),
    "bearing_outer": frozenset({VIBRATION}),
    "bearing_inner": frozenset({VIBRATION}),
    "imbalance": frozenset({VIBRATION}),
    "looseness": frozenset({VIBRATION}),
}
"""Every defect class the generator knows, with the sensors it is visible to."""

DEFECT_CLASSES: tuple[str, ...] = tuple(CLASS_MODALITIES)
IMAGE_CLASSES: tuple[str, ...] = tuple(c for c, m in CLASS_MODALITIES.items() if IMAGE in m)
VIBRATION_CLASSES: tuple[str, ...] = tuple(c for c, m in CLASS_MODALITIES.items() if VIBRATION in m)


def classes_for(modalities: tuple[str, ...]) -> tuple[str, ...]:
    """The defect classes that at least one of `modalities` can see."""
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        msg = f"modalities must be a non-empty subset of {MODALITIES}, got {modalities!r}"
        raise ValueError(msg)
    return tuple(c for c, seen in CLASS_MODALITIES.items() if seen & set(modalities))


def visible_in(label: str, modality: str) -> bool:
    """True when a part with `label` looks different from a good part to `modality`."""
    if label == "ok":
        return False
    if label not in CLASS_MODALITIES:
        msg = f"unknown defect class {label!r}; expected `ok` or one of {DEFECT_CLASSES}"
        raise ValueError(msg)
    return modality in CLASS_MODALITIES[label]
