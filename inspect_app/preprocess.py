"""Parts as the sensors saw them → the model's input tensors (`sensors` → `models`).

One function for adapt, evaluate and the running pipeline, so a line sees exactly the same
inputs when it is taught and when it runs: frames resized and normalized by
`models.inputs.frames_to_tensor`, vibration windows turned into the line's spectrum by
`sensors.spectrum.spectrum_features` with the `SpectrumConfig` saved in its card. A line taught
with pose alignment (`inspect_app.align`) has every frame registered to its reference part here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from inspect_app.align import alignment_from_card
from models.inputs import ModelInputs, frames_to_tensor
from sensors.errors import DataError
from sensors.sample import Sample
from sensors.spectrum import SpectrumConfig, spectrum_features


class InputCard(Protocol):
    """What preprocessing needs from a line's card (`inspect_app.lines.LineCard` has it)."""

    @property
    def modalities(self) -> list[str]: ...

    @property
    def image_size(self) -> int: ...

    @property
    def spectrum(self) -> dict[str, Any]: ...


def spectrum_config(card: InputCard) -> SpectrumConfig:
    """The card's `SpectrumConfig` (the defaults when the card saved none)."""
    return SpectrumConfig.from_dict(dict(card.spectrum)) if card.spectrum else SpectrumConfig()


def prepare_batch(
    samples: Sequence[Sample],
    card: InputCard,
    config: SpectrumConfig | None = None,
    *,
    partial: bool = False,
) -> ModelInputs:
    """The model inputs of `samples`; a modality the line does not use is left out (None).

    A part that lacks one of the line's sensors cannot be inspected as the line was taught (a
    defect only the missing sensor shows could pass): `DataError` naming the part and the
    sensor (`missing_sensor`), so inspection makes it a FAULT. With `partial` (teaching, and
    calibration parts for export) such a part gets zeros with `*_present` False, and the model
    judges it by its other sensor. Parts with `fault` set carry no data: the caller must treat
    them as FAULT whatever the model says. A vibration window the spectrum cannot be computed
    from (too short, sample rate too low for the line's bands) raises `DataError` naming the
    part's file; so does a frame of an aligned line that cannot be registered onto the line's
    reference part.
    """
    if not samples:
        msg = "prepare_batch needs at least one part"
        raise ValueError(msg)
    if not partial:
        for s in samples:
            problem = None if s.fault else missing_sensor(s, card.modalities)
            if problem is not None:
                source = s.meta.get("source") or (s.vibration.source if s.vibration else "")
                raise DataError(problem, f"part {s.part_id}" + (f" ({source})" if source else ""))
    image: torch.Tensor | None = None
    image_present: torch.Tensor | None = None
    warps: list[Any] | None = None
    spectrum: torch.Tensor | None = None
    vibration_present: torch.Tensor | None = None
    if "image" in card.modalities:
        frames = [None if s.fault else s.frame for s in samples]
        image, image_present = frames_to_tensor(frames, card.image_size)
        alignment = alignment_from_card(card)
        if alignment is not None:
            image, reg = alignment.register(image, image_present)
            if reg.failed:  # not inspectable as taught: a FAULT, never judged unaligned
                parts = ", ".join(samples[i].part_id for i in reg.failed)
                raise DataError(
                    f"part {parts}: the frame could not be registered onto the line's reference "
                    "part (part missing, misplaced or not this product, or the camera moved)"
                )
            warps = reg.warps
    if "vibration" in card.modalities:
        cfg = config or spectrum_config(card)
        spec = np.zeros((len(samples), 2, cfg.n_bins), dtype=np.float32)
        present = np.zeros(len(samples), dtype=bool)
        for i, s in enumerate(samples):
            v = s.vibration
            if v is None or s.fault:
                continue
            try:
                spec[i] = spectrum_features(v.samples, v.sample_rate_hz, v.rpm, cfg)[0]
            except ValueError as exc:
                raise DataError(f"part {s.part_id}: {exc}", v.source or None) from exc
            present[i] = True
        spectrum = torch.from_numpy(spec)
        vibration_present = torch.from_numpy(present)
    return ModelInputs(
        image=image,
        spectrum=spectrum,
        image_present=image_present,
        vibration_present=vibration_present,
        frame_warps=warps,
    )


def missing_sensor(sample: Sample, modalities: Sequence[str]) -> str | None:
    """Why `sample` cannot be inspected by a line taught on `modalities`: a sensor it lacks
    (None when it has every one). The caller names the part."""
    lacking = [
        name
        for name, value in (("image", sample.frame), ("vibration", sample.vibration))
        if name in modalities and value is None
    ]
    if not lacking:
        return None
    what = " and ".join("no image" if n == "image" else "no vibration window" for n in lacking)
    return (
        f"{what}, and the line is taught on "
        f"{' and '.join(modalities)}: a defect only the {' and '.join(lacking)} would show "
        "cannot be ruled out"
    )


def line_modalities(samples: Sequence[Sample]) -> list[str]:
    """The modalities a set of parts carries: `image`, `vibration` or both."""
    found = []
    if any(s.frame is not None for s in samples):
        found.append("image")
    if any(s.vibration is not None for s in samples):
        found.append("vibration")
    if not found:
        msg = "none of the parts has an image or a vibration window"
        raise ValueError(msg)
    return found


def small_frames(samples: Sequence[Sample], card: Any) -> list[Sample]:
    """The parts whose frames are smaller than a line taught on frames larger than the
    backbone's (`image_scale` > 1, docs/adapt.md step 5) takes: they are enlarged to its size,
    and its pixel template then compares less detail than it learned. [] on any other line."""
    model = getattr(card, "model", None) or {}
    if int(model.get("image_scale", 1)) <= 1:
        return []
    size = int(card.image_size)
    return [s for s in samples if s.frame is not None and min(s.frame.shape[:2]) < size]


def small_frames_note(count: int, example: Sample, card: Any) -> str:
    """The warning for `count` parts found by `small_frames`, `example` being one of them."""
    assert example.frame is not None  # small_frames only finds parts with a frame
    h, w = example.frame.shape[:2]
    return (
        f"{count} part(s) came with frames smaller than the {card.image_size} px this line "
        f"takes (e.g. part {example.part_id}: {w}x{h} px): they are enlarged, and the pixel "
        "template compares less detail than it was taught on; restore the camera's resolution "
        "or teach the line again (--template-size)"
    )
