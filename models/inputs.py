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
        arr = np.asarray(frame)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            msg = f"frame {i}: expected RGB uint8 (H, W, 3), got {arr.dtype} {arr.shape}"
            raise ValueError(msg)
        img = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float() / 255.0
        img = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True)[0]
        out[i] = (img - mean) / std  # (3, size, size)
        present[i] = True
    return out, present
