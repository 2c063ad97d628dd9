"""Acquire and condition what a part looks like and sounds like.

Cameras, vibration readers, trigger pairing, spectra, the dataset contract and the synthetic line
generator. Nothing here knows about the model or the operator console.

The names below import on first use, so `import sensors` stays cheap (scipy and OpenCV load only
when a reader or the spectrum is needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sensors.errors import DataError
from sensors.sample import OK_LABEL, Sample, VibrationWindow

if TYPE_CHECKING:
    from sensors.camera import CaptureSource, Frame, ImageFolderSource, read_image, read_mask
    from sensors.dataset import LineDataset
    from sensors.spectrum import SpectrumConfig, envelope_spectrum, spectrum_features
    from sensors.sync import Pair, Pairer
    from sensors.vibration import TimedWindow, VibrationReplay, VibrationSource, read_vibration

_LAZY = {
    "CaptureSource": "sensors.camera",
    "Frame": "sensors.camera",
    "ImageFolderSource": "sensors.camera",
    "read_image": "sensors.camera",
    "read_mask": "sensors.camera",
    "LineDataset": "sensors.dataset",
    "SpectrumConfig": "sensors.spectrum",
    "envelope_spectrum": "sensors.spectrum",
    "spectrum_features": "sensors.spectrum",
    "Pair": "sensors.sync",
    "Pairer": "sensors.sync",
    "TimedWindow": "sensors.vibration",
    "VibrationReplay": "sensors.vibration",
    "VibrationSource": "sensors.vibration",
    "read_vibration": "sensors.vibration",
}

__all__ = [
    "OK_LABEL",
    "CaptureSource",
    "DataError",
    "Frame",
    "ImageFolderSource",
    "LineDataset",
    "Pair",
    "Pairer",
    "Sample",
    "SpectrumConfig",
    "TimedWindow",
    "VibrationReplay",
    "VibrationSource",
    "VibrationWindow",
    "envelope_spectrum",
    "read_image",
    "read_mask",
    "read_vibration",
    "spectrum_features",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'sensors' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)
