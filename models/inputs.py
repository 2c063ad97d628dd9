"""Model inputs as tensors, and camera frames to a normalized image tensor (pure computation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# Per-channel normalization of RGB in [0, 1]; the backbone is pretrained with these values.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.25, 0.25, 0.25)


@dataclass
class ModelInputs:
    """One batch for the backbone or a line model; a missing modality is zeros + present=False."""

    image: torch.Tensor | None  # (B, 3, S, S) float, normalized with IMAGE_MEAN / IMAGE_STD
    spectrum: torch.Tensor | None  # (B, 2, F) float, from sensors.spectrum
    image_present: torch.Tensor | None = None  # (B,) bool
    vibration_present: torch.Tensor | None = None  # (B,) bool
    # per frame, the (2, 3) warp that registered it onto the line's reference (None: not
    # moved); heat-maps are drawn back onto the frame with it. Not a model input.
    frame_warps: list[Any] | None = None

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `InspectBackbone.forward` / `LineModel.forward`."""
        return {
            "image": self.image,
            "spectrum": self.spectrum,
            "image_present": self.image_present,
            "vibration_present": self.vibration_present,
        }


def frames_to_tensor(
    frames: Sequence[np.ndarray | None], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB uint8 frames (H, W, 3) or gray (H, W) -> normalized (B, 3, size, size) and present (B,).

    A frame given as None (camera fault, row without an image) becomes zeros with present=False.
    """
    if size <= 0:
        msg = f"size must be a positive number of pixels, got {size}"
        raise ValueError(msg)
    out = torch.zeros(len(frames), 3, size, size)
    present = torch.zeros(len(frames), dtype=torch.bool)
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    for i, frame in enumerate(frames):
        if frame is None:
            continue
        out[i] = (_resized(i, np.asarray(frame), size) - mean) / std  # (3, size, size)
        present[i] = True
    return out, present


def _resized(index: int, arr: np.ndarray, size: int) -> torch.Tensor:
    """One uint8 frame (H, W, 3) or (H, W) as float RGB in [0, 1], (3, size, size), by bilinear
    interpolation with antialiasing. A color frame at least four times the size on both sides
    (a camera's megapixels) is reduced in uint8 (torch's vectorized kernel, the same filter,
    each value rounded to a grey level: under 1 level from the float result), 5 megapixels in
    3 ms instead of 90 on one core; smaller ones as before, to the bit. A gray frame is reduced
    as one channel, then repeated (the same values as three)."""
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        msg = f"frame {index}: expected RGB uint8 (H, W, 3), got {arr.dtype} {arr.shape}"
        raise ValueError(msg)
    if arr.ndim == 2:
        gray = torch.from_numpy(np.ascontiguousarray(arr))[None, None].float() / 255.0
        gray = F.interpolate(gray, size=(size, size), mode="bilinear", antialias=True)[0]
        return gray.expand(3, size, size)
    pixels = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]  # channels last
    if min(arr.shape[:2]) >= 4 * size:
        small = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)
        return small[0].float() / 255.0
    img = pixels.float() / 255.0
    return F.interpolate(img, size=(size, size), mode="bilinear", antialias=True)[0]
