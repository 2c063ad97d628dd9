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


def _float_resize(frame: np.ndarray, size: int) -> torch.Tensor:
    """The reference: the frame as float RGB, bilinear with antialiasing, normalized."""
    rgb = np.repeat(frame[:, :, None], 3, axis=2) if frame.ndim == 2 else frame
    img = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0
    img = torch.nn.functional.interpolate(
        img[None], size=(size, size), mode="bilinear", antialias=True
    )[0]
    return (img - IMAGE_MEAN[0]) / IMAGE_STD[0]


def test_a_camera_sized_frame_is_reduced_within_a_grey_level_and_small_ones_exactly() -> None:
    rng = np.random.default_rng(0)
    level = 1 / 255 / IMAGE_STD[0]  # one grey level in normalized units
    big = rng.integers(0, 256, (600, 520, 3), dtype=np.uint8)  # >= 4x the size: the uint8 path
    x, _ = frames_to_tensor([big, big[..., 1].copy()], 128)
    assert float((x[0] - _float_resize(big, 128)).abs().max()) < level
    torch.testing.assert_close(x[1], _float_resize(big[..., 1], 128), rtol=0, atol=1e-6)
    small = big[:300, :300]  # under 4x: exactly as before
    y, _ = frames_to_tensor([small], 128)
    torch.testing.assert_close(y[0], _float_resize(small, 128), rtol=0, atol=1e-6)


def test_bad_frame_is_named() -> None:
    with pytest.raises(ValueError, match="frame 1"):
        frames_to_tensor([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)], 8)


def test_model_inputs_as_kwargs() -> None:
    x, present = frames_to_tensor([None], 16)
    inputs = ModelInputs(image=x, spectrum=None, image_present=present)
    assert set(inputs.as_kwargs()) == {"image", "spectrum", "image_present", "vibration_present"}
