"""prepare_batch on parts that lack one of their line's sensors: inspection refuses them (the
caller makes them FAULT), teaching takes them with the sensor marked absent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from inspect_app.preprocess import missing_sensor, prepare_batch
from sensors.errors import DataError
from sensors.sample import Sample, VibrationWindow


@dataclass
class _Card:
    modalities: list[str]
    image_size: int = 32
    spectrum: dict[str, Any] = field(default_factory=lambda: {"psd_bins": 32, "env_bins": 32})
    align: dict[str, Any] = field(default_factory=dict)


def _frame() -> np.ndarray:
    return np.full((32, 32, 3), 120, np.uint8)


def _window() -> VibrationWindow:
    return VibrationWindow(np.random.default_rng(0).standard_normal(12000), 24000.0)


def test_a_fused_line_refuses_a_part_without_vibration_naming_it() -> None:
    card = _Card(["image", "vibration"])
    whole = Sample("p1", frame=_frame(), vibration=_window())
    half = Sample("p2", frame=_frame())
    assert missing_sensor(whole, card.modalities) is None
    with pytest.raises(
        DataError, match=r"part p2: no vibration window, and the line is taught on "
    ):
        prepare_batch([whole, half], card)
    blind = Sample("p3", vibration=_window())
    assert str(missing_sensor(blind, card.modalities)).startswith("no image, and the line")
    with pytest.raises(DataError, match=r"part p3: no image"):
        prepare_batch([blind], card)
    # a part already FAULT carries no data: its fault is what is reported, not this
    broken = Sample("p4", fault="p4.png: unreadable")
    assert prepare_batch([whole, broken], card).vibration_present is not None


def test_teaching_takes_a_part_without_a_sensor_marked_absent() -> None:
    card = _Card(["image", "vibration"])
    parts = [Sample("p1", frame=_frame(), vibration=_window()), Sample("p2", frame=_frame())]
    inputs = prepare_batch(parts, card, partial=True)
    assert inputs.vibration_present is not None and inputs.image_present is not None
    assert inputs.vibration_present.tolist() == [True, False]
    assert inputs.image_present.tolist() == [True, True]


def test_a_line_without_a_sensor_does_not_ask_for_it() -> None:
    inputs = prepare_batch([Sample("p1", frame=_frame())], _Card(["image"]))
    assert inputs.spectrum is None and inputs.image is not None
