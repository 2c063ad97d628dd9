"""Acquire and condition what a part looks like and sounds like.

Cameras, vibration readers, trigger pairing, spectra, the dataset contract and the synthetic line
generator. Nothing here knows about the model or the operator console.
"""

from sensors.sample import Sample, VibrationWindow

__all__ = ["Sample", "VibrationWindow"]
