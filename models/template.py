"""The good-part template: how far each pixel of a part is from the same pixel of the good parts.

The golden-template comparison of machine vision, with statistics: the good parts of a line,
registered onto one reference (`inspect_app.align`), give a mean image and a per-pixel spread.
The compared channels are the colours plus the gradient magnitude of the gray image (edges:
a scratch, a crack or a chipped outline moves them more than the colour). A part's deviation
map is |part - mean| / spread per channel, smoothed over a few pixels, and the largest over the
channels (a tint shows in one colour only); its score is the mean of the largest deviations.
It sees what a patch memory cannot: a feature that is missing (the surface there looks like good
surface elsewhere), a stain on a plain area, a chipped outline - anything that is wrong *for
its place*. It needs the parts registered; on an unaligned line it is not used.

Scores are standardized by the good parts' own leave-out scores, like `models.anomaly`, so
"3" means three spreads above a typical good part. Static shapes throughout (export-friendly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.anomaly import MemoryScores, robust_spread

_LEAVE_OUT_GROUPS = 5


@dataclass(frozen=True)
class TemplateConfig:
    """How a deviation map becomes a score."""

    smooth: int = 5  # box filter (pixels) over the deviation map: noise averages out
    top_k_pixels: int = 20  # part score = mean of the `top_k` largest smoothed deviations
    # the spread of a pixel is at least this fraction of the median pixel spread: a pixel that
    # never varied across the good parts (a flat background) must not turn noise into defects
    spread_floor: float = 0.5
    gradient: bool = True  # compare the gray image's gradient magnitude too (edges)


class PixelTemplate(nn.Module):
    """Mean and spread of the aligned good parts' pixels; the distance of a part from them."""

    def __init__(
        self,
        channels: int,
        size: int,
        patch_size: int,
        config: TemplateConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config or TemplateConfig()
        self.patch_size = patch_size
        width = channels + (1 if self.config.gradient else 0)
        self.register_buffer("mean", torch.zeros(width, size, size))
        self.register_buffer("spread", torch.ones(width, size, size))
        self.register_buffer("stats", torch.tensor([0.0, 1.0, 0.0, 1.0]))

    mean: Tensor
    spread: Tensor
    stats: Tensor

    def _stats_of(self, images: Tensor) -> tuple[Tensor, Tensor]:
        mean = images.mean(0)
        std = images.std(0, unbiased=False) if images.shape[0] > 1 else torch.zeros_like(mean)
        floor = std.flatten(1).median(dim=1).values.clamp_min(1e-3) * self.config.spread_floor
        spread = torch.sqrt(std**2 + floor.view(-1, 1, 1) ** 2)
        return mean, spread

    def channels(self, images: Tensor) -> Tensor:
        """(B, C, S, S) images -> the compared channels: colours (+ gradient magnitude)."""
        x = images.float()
        if not self.config.gradient:
            return x
        gray = x.mean(1, keepdim=True)
        gx = F.pad(gray[..., :, 1:] - gray[..., :, :-1], (0, 1))
        gy = F.pad(gray[..., 1:, :] - gray[..., :-1, :], (0, 0, 0, 1))
        return torch.cat([x, torch.sqrt(gx * gx + gy * gy)], dim=1)

    def _raw(self, images: Tensor, mean: Tensor, spread: Tensor) -> MemoryScores:
        """Scores of `images` already turned into `channels`."""
        k = self.config.smooth
        dev = ((images - mean) / spread).abs()  # (B, C, S, S)
        dev = F.avg_pool2d(dev, k, stride=1, padding=k // 2, count_include_pad=False)
        dev = dev.amax(dim=1, keepdim=True)  # (B, 1, S, S): the channel that moved most
        flat = dev.flatten(1)
        top = min(self.config.top_k_pixels, flat.shape[1])
        score = flat.topk(top, dim=1).values.mean(1)
        patch = F.max_pool2d(dev, self.patch_size).flatten(1)  # (B, Ni): the heat-map's grid
        return MemoryScores(score=score, patch_scores=patch)

    def fit(self, images: Tensor, groups: Tensor | None = None) -> None:
        """Mean and spread from good parts' aligned images `(N, C, S, S)`, then standardize.

        The standardization uses leave-out scores: each good part scored against the statistics
        of the other folds (`groups (N,)`, else 5 folds), as a new good part will be.
        """
        if images.ndim != 4 or images.shape[0] == 0:
            msg = f"good-part images must be (N>0, C, S, S), got {tuple(images.shape)}"
            raise ValueError(msg)
        images = self.channels(images)
        self.mean, self.spread = self._stats_of(images)
        n = images.shape[0]
        if n < 3:
            return  # too few good parts to measure their own spread; scores stay raw
        if groups is None or torch.unique(groups).numel() < 2:
            groups = torch.arange(n) % min(n, _LEAVE_OUT_GROUPS)
        part = torch.empty(n)
        patch = torch.empty(n, self._raw(images[:1], self.mean, self.spread).patch_scores.shape[1])
        for g in torch.unique(groups):
            held = groups == g
            if int((~held).sum()) < 2:
                mean, spread = self.mean, self.spread
            else:
                mean, spread = self._stats_of(images[~held])
            r = self._raw(images[held], mean, spread)
            part[held], patch[held] = r.score, r.patch_scores
        self.stats = torch.stack(
            [part.median(), robust_spread(part), patch.median(), robust_spread(patch.flatten())]
        ).float()

    def forward(self, images: Tensor) -> MemoryScores:
        raw = self._raw(self.channels(images), self.mean, self.spread)
        center, scale, p_center, p_scale = self.stats.unbind(0)
        return MemoryScores(
            score=(raw.score - center) / scale,
            patch_scores=(raw.patch_scores - p_center) / p_scale,
        )
