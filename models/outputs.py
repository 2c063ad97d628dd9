"""What the backbone and the line model return: dataclasses of tensors, never bare tuples."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class BackboneOutput:
    """Token features of one batch; a modality that was not given has zero tokens (N = 0)."""

    cls: torch.Tensor  # (B, D) the class token after the final norm
    image_tokens: torch.Tensor  # (B, Ni, D) final image tokens, row-major over `grid`
    spectrum_tokens: torch.Tensor  # (B, Ns, D) final spectrum tokens, low to high frequency
    prompt_tokens: torch.Tensor  # (B, P, D) final prompt tokens (P = 0 without prompts)
    grid: tuple[int, int]  # (rows, cols) of the image token grid
    patch_features: torch.Tensor  # (B, Ni, Dm) multi-scale features for the good-part memory
    defect_logits: torch.Tensor | None = None  # (B, Ni) pretrained per-patch defect logits


@dataclass
class Prediction:
    """A line model's answer for a batch of parts."""

    defect_score: torch.Tensor  # (B,) in [0, 1], compared with the line's threshold
    class_probs: torch.Tensor  # (B, C) over the line's defect classes
    heatmap: torch.Tensor  # (B, h, w) in [0, 1]
    anomaly_score: torch.Tensor  # (B,) raw distance to the good parts' patch features
