"""Frames to a normalized tensor; a missing frame is zeros with present=False."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.inputs import IMAGE_MEAN, IMAGE_STD, ModelInputs, frames_to_tensor


def test_frames_resize_normalize_and_missing() -> None:
    white = np.full((40, 60, 3), 255, dtype=np.uint8)
    gray = np.zeros((20, 20), dtype=np.uint8)
    x, present = frames_to_tensor([white, None, gray], 32)
    assert x.shape == (3, 3, 32, 32)
    assert present.tolist() == [True, False, True]
    torch.testing.assert_close(x[0], torch.full((3, 32, 32), (1 - IMAGE_MEAN[0]) / IMAGE_STD[0]))
    assert bool((x[1] == 0).all())
    torch.testing.assert_close(x[2], torch.full((3, 32, 32), -IMAGE_MEAN[0] / IMAGE_STD[0]))


def test_bad_frame_is_named() -> None:
    with pytest.raises(ValueError, match="frame 1"):
        frames_to_tensor([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)], 8)


def test_model_inputs_as_kwargs() -> None:
    x, present = frames_to_tensor([None], 16)
    inputs = ModelInputs(image=x, spectrum=None, image_present=present)
    assert set(inputs.as_kwargs()) == {"image", "spectrum", "image_present", "vibration_present"}
