"""The good-part template: how far each pixel of a part is from the same pixel of the good parts.

The golden-template comparison of machine vision, with statistics: the good parts of a line,
registered onto one reference (`inspect_app.align`), give a mean image and a per-pixel spread.
The compared channels are the colours plus the gradient magnitude of the gray image (edges:
a scratch, a crack or a chipped outline moves them more than the colour). A part's deviation
z = (part - mean) / spread is signed, per channel. Three steps make it a defect map:

- *illumination*: each part's own slow shading (a light that drifts, a part that sits a little
  higher) is a broad, smooth deviation; it is removed by subtracting the best-fitting plane
  (brightness and tilt, exact up to the image's edges) and then a wide Gaussian blur of what
  is left (`highpass`, sigma in pixels). A defect is smaller than that and stays.
- *the good parts' own modes*: what varies together from good part to good part - a part a
  little larger than the reference puts a thin crescent along its whole outline, a light a
  little off brightens every relief edge - is measured on the good parts themselves: the main
  modes (principal components) of their deviation maps, `modes` of them, are taken out of
  every part's deviation (projected away). A defect is not a mix of the good parts'
  deviations and stays; an outline or a texture a pixel off no longer looks like one.
- *matched filters*: the signed deviation is filtered by Gaussians of a few widths (`scales`),
  each normalized so pixel noise keeps unit strength: a change that covers several pixels adds
  up, noise averages out. Each filter is put in units of its own good-part 99th percentile
  (measured on good parts left out of the statistics) and the map is the largest over filters
  and channels (a tint shows in one colour only).

The part's score is the mean of the `top_k` largest values of that map. It sees what a patch
memory cannot: a feature that is missing (the surface there looks like good surface elsewhere),
a stain on a plain area, a chipped outline - anything that is wrong *for its place*. It needs
the parts registered; on an unaligned line it is not used. (Lines taught before the filters
kept the first form: |z| averaged in a `smooth` x `smooth` box, `scales=()`.)

Scores are standardized by the good parts' own leave-out scores, like `models.anomaly`, so
"3" means three spreads above a typical good part. Static shapes throughout (export-friendly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.anomaly import MemoryScores, leave_out_groups, standardization, standardized

_SHADING_STEP = 4  # the slow shading is blurred on a grid this many times coarser
_FILTER_QUANTILE = 0.99  # each matched filter in units of this quantile of good-part values
COARSE_SIGMA = 2.0  # `coarse_filters`: filters this wide or wider run on a 2x coarser grid


@dataclass(frozen=True)
class TemplateConfig:
    """How a deviation map becomes a score."""

    smooth: int = 5  # without `scales`: box filter (pixels) over |deviation| (the first form)
    # Gaussian matched filters (sigma, pixels at the model's image size) over the signed
    # deviation; () keeps the first form
    scales: tuple[float, ...] = (1.5, 3.0)
    highpass: float = 12.0  # sigma (pixels) of the per-part slow shading removed; 0 = keep it
    top_k_pixels: int = 20  # part score = mean of the `top_k` largest smoothed deviations
    # the spread of a pixel is at least this fraction of the median pixel spread: a pixel that
    # never varied across the good parts (a flat background) must not turn noise into defects
    spread_floor: float = 0.5
    gradient: bool = True  # compare the gray image's gradient magnitude too (edges)
    # filters of sigma >= COARSE_SIGMA px run on the deviation averaged 2x2 (sigma halved) and
    # are brought back bilinearly: a smooth filter loses nothing on the coarser grid and costs
    # a fraction (lines compared at the camera's resolution, `at_scale`; off for older lines)
    coarse_filters: bool = False
    # the good parts' main modes of deviation taken out of every part's deviation (with
    # `scales`); 0 for every line taught before it. On five development lines (256 px frames,
    # template alone, two seeds) 0 / 3 / 8 / 16 modes gave AUROC 0.942 / 0.952 / 0.954 / 0.955
    modes: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(float(v) for v in self.scales))
        if any(v <= 0 for v in self.scales) or self.highpass < 0:
            msg = f"template scales must be > 0 and highpass >= 0, got {self.scales}, "
            msg += f"{self.highpass}"
            raise ValueError(msg)
        if self.modes < 0:
            msg = f"template modes must be >= 0, got {self.modes}"
            raise ValueError(msg)

    def at_scale(self, scale: int) -> TemplateConfig:
        """This config for frames compared at `scale` times the backbone's image size.

        The lengths keep their meaning on the part (filters, high-pass and the top pixels'
        area grow with the scale), and a filter of the finest width is added: the detail the
        smaller picture could not hold is what the larger one is for. On five development
        lines (template alone, image defects, 256 px frames) this set, (1.5, 3, 6) px, gave
        AUROC 0.940; the 128 px set scaled alone 0.923, (1, 2, 4) px 0.935, and (1.5, 3, 6,
        12) px 0.940 (at 128 px: 0.910).
        """
        if scale < 1:
            msg = f"template scale must be a whole number >= 1, got {scale}"
            raise ValueError(msg)
        if scale == 1:
            return self
        scales = tuple(v * scale for v in self.scales)
        if scales and min(self.scales) not in scales:
            scales = (min(self.scales), *scales)
        return replace(
            self,
            smooth=self.smooth * scale // 2 * 2 + 1,  # odd: the box stays centred
            scales=scales,
            highpass=self.highpass * scale,
            top_k_pixels=self.top_k_pixels * scale * scale,
            coarse_filters=True,
        )


def _gaussian(sigma: float) -> Tensor:
    """A 1-D Gaussian of `sigma` pixels, 3 sigma each side, summing to 1."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _plane_basis(size: int) -> Tensor:
    """(S*S, 3) orthonormal basis of the planes a + b x + c y over an S x S image."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    basis = torch.stack([torch.ones_like(x), x, y]).flatten(1)  # (3, S*S)
    q, _ = torch.linalg.qr(basis.T)
    return q.contiguous()


def _matched_filters(scales: tuple[float, ...]) -> Tensor:
    """(F, K) 1-D Gaussians, one per scale, zero-padded to one length K. Each has unit L2 norm,
    so the separable 2-D filter (rows, then columns) has unit norm: white noise keeps unit
    variance."""
    kernels = [_gaussian(s) for s in scales]
    size = max(k.numel() for k in kernels)
    bank = torch.zeros(len(kernels), size)
    for i, k in enumerate(kernels):
        o = (size - k.numel()) // 2
        bank[i, o : o + k.numel()] = k / k.norm()
    return bank


def _separable(z: Tensor, bank: Tensor, n: int) -> Tensor:
    """Each channel of `z (B, C, H, W)` through the `n` separable filters of `bank (C*n, K)`
    (depthwise: rows, then columns): (B, C, n, H, W)."""
    b, c, h, w = z.shape
    r = bank.shape[1] // 2
    x = F.conv2d(z, bank[:, None, None, :], padding=(0, r), groups=c)
    x = F.conv2d(x, bank[:, None, :, None], padding=(r, 0), groups=c * n)
    return x.reshape(b, c, n, h, w)


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
        scales = self.config.scales
        if scales:  # the filters are constants of the config; their good-part units are fitted
            coarse = self.config.coarse_filters and size % 2 == 0
            self.fine_scales = tuple(v for v in scales if not coarse or v < COARSE_SIGMA)
            self.coarse_scales = tuple(v for v in scales if coarse and v >= COARSE_SIGMA)
            # (C*F, K): row g*F + f is filter f for channel g (depthwise convolutions); the
            # coarse filters' widths are in pixels of the 2x coarser grid
            half = tuple(v / 2 for v in self.coarse_scales)
            for name, widths in (("filters", self.fine_scales), ("coarse_bank", half)):
                bank = _matched_filters(widths).repeat(width, 1) if widths else torch.zeros(0, 1)
                self.register_buffer(name, bank, persistent=False)
            # the shading's blur runs on a grid _SHADING_STEP times coarser (_without_shading)
            self.shading_step = _SHADING_STEP if size % _SHADING_STEP == 0 else 1
            sigma = self.config.highpass / self.shading_step
            blur = _gaussian(sigma) if sigma else torch.ones(1)
            self.register_buffer("blur", blur, persistent=False)
            self.register_buffer("plane", _plane_basis(size), persistent=False)
            self.register_buffer("filter_scale", torch.ones(len(scales)))
            if self.config.modes:  # (K, C*S*S) orthonormal rows; zero rows where goods ran out
                self.register_buffer("modes", torch.zeros(self.config.modes, width * size * size))
        # the fitted good parts' standardized leave-out scores, in the order `fit` took them
        # (`models.anomaly.PatchMemory.leave_out`); not saved
        self.leave_out: Tensor | None = None

    mean: Tensor
    spread: Tensor
    stats: Tensor
    filters: Tensor
    coarse_bank: Tensor
    blur: Tensor
    plane: Tensor
    filter_scale: Tensor
    modes: Tensor

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

    def _without_shading(self, z: Tensor) -> Tensor:
        """Deviation maps (B, C, S, S) less their best plane, then less the Gaussian blur
        (`highpass` sigma, edges repeated) of what is left."""
        b, c, h, w = z.shape
        flat = z.reshape(b, c, h * w)
        z = (flat - (flat @ self.plane) @ self.plane.T).reshape(b * c, 1, h, w)
        # the blur is smooth: computed on a grid `_SHADING_STEP` times coarser, then brought
        # back bilinearly (a 4x smaller kernel on 16x fewer pixels; the same within 1 %)
        step = self.shading_step
        x = F.avg_pool2d(z, step) if step > 1 else z
        k = self.blur
        r = k.numel() // 2
        x = F.pad(x, (r, r, r, r), mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1))
        x = F.conv2d(x, k.view(1, 1, -1, 1))
        if step > 1:
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return (z - x).reshape(b, c, h, w)

    def _shading_free(self, images: Tensor, mean: Tensor, spread: Tensor) -> Tensor:
        """The signed deviation z (B, C, S, S) of `images` (already `channels`), its slow
        shading taken out."""
        z = (images - mean) / spread
        return self._without_shading(z) if self.config.highpass else z

    def _good_modes(self, images: Tensor, mean: Tensor, spread: Tensor) -> Tensor:
        """(K, C*S*S): the main modes of the good parts' shading-free deviations (their
        principal directions, orthonormal), zero rows beyond what the parts can show."""
        z = self._shading_free(images, mean, spread).flatten(1)  # (N, C*S*S)
        z = z - z.mean(0, keepdim=True)
        out = z.new_zeros(self.config.modes, z.shape[1])
        if z.shape[0] < 2:
            return out
        # from the N x N Gram matrix (N parts, far fewer than pixels): eigenvectors u with
        # eigenvalues s^2 give the directions z^T u / s, as an SVD of z would, in milliseconds
        power, parts = torch.linalg.eigh(z @ z.T)  # ascending
        power, parts = power.flip(0), parts.flip(1)
        keep = min(self.config.modes, z.shape[0] - 1)  # N centred parts span N - 1 directions
        keep = min(keep, int((power > power[0] * 1e-10).sum()))
        directions = (parts[:, :keep].T @ z) / power[:keep].sqrt().unsqueeze(1)
        out[:keep] = directions
        return out

    def _deviation(
        self, images: Tensor, mean: Tensor, spread: Tensor, modes: Tensor | None = None
    ) -> Tensor:
        """Deviation maps (B, F, S, S) of `images` already turned into `channels`: one per
        matched filter (largest over channels), before the filters' good-part units. `modes`:
        the good parts' modes to take out (default: the fitted ones)."""
        if not self.config.scales:
            z = (images - mean) / spread  # (B, C, S, S), signed
            k = self.config.smooth
            dev = F.avg_pool2d(z.abs(), k, stride=1, padding=k // 2, count_include_pad=False)
            return dev.amax(dim=1, keepdim=True)  # (B, 1, S, S): the channel that moved most
        z = self._shading_free(images, mean, spread)
        if self.config.modes:
            modes = self.modes if modes is None else modes
            flat = z.flatten(1)  # (B, C*S*S)
            z = (flat - (flat @ modes.T) @ modes).view_as(z)
        b, c, h, w = z.shape
        maps = []  # (B, C, f, S, S) per group: fine filters, then coarse ones
        if self.fine_scales:
            maps.append(_separable(z, self.filters, len(self.fine_scales)))
        if self.coarse_scales:
            n = len(self.coarse_scales)
            x = _separable(F.avg_pool2d(z, 2), self.coarse_bank, n)
            x = F.interpolate(x.flatten(1, 2), size=(h, w), mode="bilinear", align_corners=False)
            maps.append(x.reshape(b, c, n, h, w))
        out = maps[0] if len(maps) == 1 else torch.cat(maps, dim=2)
        return out.abs().amax(dim=1)  # (B, F, S, S)

    def _score(self, dev: Tensor) -> MemoryScores:
        """Raw scores of deviation maps (B, F, S, S)."""
        if self.config.scales:
            dev = dev / self.filter_scale.view(1, -1, 1, 1)
        dev = dev.amax(dim=1, keepdim=True)  # (B, 1, S, S)
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
        self.leave_out = None
        n = images.shape[0]
        if n < 3:
            return  # too few good parts to measure their own spread; scores stay raw
        groups = leave_out_groups(n, groups)
        maps = len(self.config.scales) or 1  # one per matched filter; the first form has one
        dev = torch.empty(n, maps, *images.shape[2:])
        with_modes = bool(self.config.scales and self.config.modes)
        for g in torch.unique(groups):
            held = groups == g
            rest = images[~held]
            if rest.shape[0] < 2:
                rest = images
            mean, spread = self._stats_of(rest)
            # the held-out parts lose only the modes the other good parts show
            modes = self._good_modes(rest, mean, spread) if with_modes else None
            dev[held] = self._deviation(images[held], mean, spread, modes)
        if with_modes:
            self.modes = self._good_modes(images, self.mean, self.spread)
        if self.config.scales:  # each filter in units of its good-part high quantile
            per_filter = dev.transpose(0, 1).flatten(1)  # (F, N*S*S)
            k = max(1, int(_FILTER_QUANTILE * per_filter.shape[1]))
            self.filter_scale = per_filter.kthvalue(k, dim=1).values.clamp_min(1e-6)
        self.stats, self.leave_out = standardization(self._score(dev))

    def forward(self, images: Tensor) -> MemoryScores:
        raw = self._score(self._deviation(self.channels(images), self.mean, self.spread))
        return standardized(raw, self.stats)
