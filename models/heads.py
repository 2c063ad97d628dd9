"""Heads on backbone tokens: defect class from the class token, a per-patch defect map."""

from __future__ import annotations

import torch
from torch import nn


class ClassHead(nn.Module):
    """Class logits (B, C) from the class token (B, D)."""

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.fc(cls)


class DefectMapHead(nn.Module):
    """Per-token defect logits (B, N) from tokens (B, N, D): the heat-map before the sigmoid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(tokens).squeeze(-1)  # (B, N)


def logits_to_heatmap(logits: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Per-patch logits (B, h*w) -> heat-map (B, h, w) in [0, 1]."""
    rows, cols = grid
    return torch.sigmoid(logits).view(logits.shape[0], rows, cols)  # (B, h, w)
