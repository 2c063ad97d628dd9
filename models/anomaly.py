"""The good-part memory: how far a part's patches are from every patch of the good parts.

PatchCore's idea (Roth et al., 2022) on our own backbone's features: keep the good parts' patch
features in a memory bank, thin it with a greedy k-center coreset, and score a new part's
patches by their distance to the nearest memory entry. A defect of a kind never labeled still
lands far from every good patch, so this score catches it; the per-patch distances are the
heat-map. The same memory works on vibration spectrum tokens (one token per frequency band).

Scores are standardized by the good parts themselves (`center`, `scale` of their
leave-out scores), so image and vibration distances are comparable and "3" means "three
spreads above a typical good part" on any line. Everything is static-shaped for export: the bank
is a buffer of fixed size, distances are one matrix product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LEAVE_OUT_GROUPS = 5


@dataclass(frozen=True)
class MemoryConfig:
    """How big the memory is and how a part's patch distances become one score."""

    max_entries: int = 2048  # coreset size cap: bounds inference cost and the weights file
    coreset_projection: int = 64  # random projection width for the k-center selection
    top_k_patches: int = 3  # part score = mean of its `top_k` largest patch distances
    unit_length: bool = True  # compare directions (learned features) or raw values (spectra)
    # Where a token is, appended to its features with this weight: a patch is then compared with
    # good patches at about the same place (parts sit in a fixture; a spectrum band is a
    # frequency). 0 compares every patch with every good patch, wherever it is.
    position_weight: float = 0.0


@dataclass
class MemoryScores:
    """Distances of a batch to the memory: per part `(B,)` and per patch `(B, P)`."""

    score: Tensor
    patch_scores: Tensor


def greedy_coreset(features: Tensor, n_select: int, projection: int, seed: int = 0) -> Tensor:
    """Indices of `n_select` rows of `features (N, D)` chosen by greedy k-center selection.

    Each step adds the row farthest from everything chosen so far, so rare good-part patches
    (an edge, a fixture) stay in the memory while the many near-duplicates go. Distances are
    computed in a random projection to `projection` dims (Johnson-Lindenstrauss), for speed.
    """
    n = features.shape[0]
    if n_select >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    x = features.float()
    if projection < x.shape[1]:
        proj = torch.randn(x.shape[1], projection, generator=gen) / projection**0.5
        x = x @ proj
    chosen = torch.empty(n_select, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=gen))
    sq = (x * x).sum(1)  # (N,)
    min_d2 = sq - 2.0 * (x @ x[chosen[0]]) + sq[chosen[0]]  # squared distances, (N,)
    for i in range(1, n_select):
        idx = int(torch.argmax(min_d2))
        chosen[i] = idx
        d2 = sq - 2.0 * (x @ x[idx]) + sq[idx]
        torch.minimum(min_d2, d2, out=min_d2)
    return chosen


def nearest_distance(queries: Tensor, bank: Tensor) -> Tensor:
    """Euclidean distance of each row of `queries (..., D)` to its nearest row of `bank (M, D)`."""
    # ||q - b||² = ||q||² - 2 q·b + ||b||²: one matmul, static shapes (export-friendly). Both
    # sides are first moved by the bank's mean: the same distances, from smaller norms, so the
    # three terms cancel less of float32's precision away (runtimes then agree more closely)
    centre = bank.mean(0)
    queries, bank = queries - centre, bank - centre
    q2 = (queries * queries).sum(-1, keepdim=True)  # (..., 1)
    b2 = (bank * bank).sum(-1)  # (M,)
    d2 = q2 - 2.0 * queries @ bank.transpose(0, 1) + b2  # (..., M)
    return d2.min(dim=-1).values.clamp_min(0.0).sqrt()


class PatchMemory(nn.Module):
    """A memory of good-part patch (or spectrum-token) features and the distance to it.

    Fit it with `fit(features)`, where `features (N, P, D)` are the good parts' tokens. Calling
    it on `(B, P, D)` gives standardized scores: per part `(B,)` and per patch `(B, P)`.
    """

    def __init__(self, dim: int, config: MemoryConfig | None = None, entries: int = 1) -> None:
        super().__init__()
        self.config = config or MemoryConfig()
        width = dim + (2 if self.config.position_weight > 0 else 0)
        self.register_buffer("bank", torch.zeros(entries, width))
        # standardization of part scores and of patch scores, from the good parts
        self.register_buffer("stats", torch.tensor([0.0, 1.0, 0.0, 1.0]))
        # the fitted good parts' standardized leave-out scores, in the order `fit` took them:
        # what each would score as a new part (adapt's out-of-fold scores); not saved
        self.leave_out: Tensor | None = None

    bank: Tensor
    stats: Tensor

    def _normalize(self, features: Tensor) -> Tensor:
        # unit-length tokens: distances then compare directions, robust to feature scale shifts
        x = F.normalize(features.float(), dim=-1) if self.config.unit_length else features.float()
        if self.config.position_weight > 0:
            pos = token_positions(x.shape[-2]).to(x) * self.config.position_weight  # (P, 2)
            x = torch.cat([x, pos.expand(*x.shape[:-1], 2)], dim=-1)
        return x

    def fit(self, features: Tensor, groups: Tensor | None = None, seed: int = 0) -> None:
        """Build the memory from good parts' tokens `(N, P, D)` and standardize its scores.

        `groups (N,)` optionally assigns each part to a fold: the standardization then uses
        each part's distance to the memory without the entries of its own fold (a part is
        always at distance 0 from itself). Without groups the parts are dealt into 5 folds.
        """
        if features.ndim != 3 or features.shape[0] == 0:
            msg = f"good-part features must be (N>0, P, D), got {tuple(features.shape)}"
            raise ValueError(msg)
        n, p, _ = features.shape
        feats = self._normalize(features)
        flat = feats.reshape(n * p, feats.shape[-1])
        keep = greedy_coreset(
            flat, min(self.config.max_entries, n * p), self.config.coreset_projection, seed
        )
        self.bank = flat[keep].clone()
        self.leave_out = None
        if n < 2:
            return  # one good part: no spread to measure; scores stay raw distances
        owner = keep // p  # which good part each memory entry came from
        part_scores, patch_scores = self._leave_out_scores(feats, owner, groups)
        self.stats, self.leave_out = standardization(MemoryScores(part_scores, patch_scores))

    def _leave_out_scores(
        self, feats: Tensor, owner: Tensor, groups: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Each good part's distances to the memory minus the entries of its own fold.

        The same (coreset) memory as at inference, so the standardization matches what a new
        good part will see.
        """
        n, p, _ = feats.shape
        groups = leave_out_groups(n, groups)
        part_scores = torch.empty(n)
        patch_scores = torch.empty(n, p)
        for g in torch.unique(groups):
            held = groups == g
            bank = self.bank[~held[owner]]
            if bank.shape[0] == 0:
                bank = self.bank  # every entry came from this fold; better than nothing
            dist = nearest_distance(feats[held], bank)  # (h, P)
            patch_scores[held] = dist
            part_scores[held] = _pool(dist, self.config.top_k_patches)
        return part_scores, patch_scores

    def raw(self, features: Tensor) -> MemoryScores:
        """Unstandardized distances of `(B, P, D)` tokens to the memory."""
        dist = nearest_distance(self._normalize(features), self.bank)  # (B, P)
        return MemoryScores(score=_pool(dist, self.config.top_k_patches), patch_scores=dist)

    def forward(self, features: Tensor) -> MemoryScores:
        return standardized(self.raw(features), self.stats)


def leave_out_groups(n: int, groups: Tensor | None) -> Tensor:
    """The fold of each of `n` good parts for leave-out scores: `groups` when it has at least
    two, else the parts dealt into 5 folds."""
    if groups is None or torch.unique(groups).numel() < 2:
        return torch.arange(n) % min(n, _LEAVE_OUT_GROUPS)
    return groups


def standardization(leave_out: MemoryScores) -> tuple[Tensor, Tensor]:
    """A source's standardization from its good parts' raw leave-out scores: `stats` (center,
    scale of the part scores, then of the patch scores: median and `robust_spread`) and the
    good parts' standardized part scores (the source's `leave_out`)."""
    part, patch = leave_out.score, leave_out.patch_scores.flatten()
    stats = torch.stack(
        [part.median(), robust_spread(part), patch.median(), robust_spread(patch)]
    ).float()
    return stats, (part - stats[0]) / stats[1]


def standardized(raw: MemoryScores, stats: Tensor) -> MemoryScores:
    """`raw` part and patch scores in good-part spreads, by a source's `stats`."""
    center, scale, p_center, p_scale = stats.unbind(0)
    return MemoryScores(
        score=(raw.score - center) / scale,
        patch_scores=(raw.patch_scores - p_center) / p_scale,
    )


COLOUR_FEATURES = 4  # `local_colour`: the mean of each colour channel and the gray contrast
_CONTRAST_FLOOR = 0.02  # in normalized image units: about one grey level of 255


def local_colour(image: Tensor, patch: int) -> Tensor:
    """(B, Ni, 4) what each `patch` x `patch` cell of `image (B, 3, S, S)` looks like to a
    photometer: the mean of each channel and the standard deviation of the gray image, averaged
    over the cell's 3x3 neighbourhood as the backbone's patch features are.

    The pretrained features were trained to ignore brightness, contrast and colour shifts (its
    photometric augmentation), which is right for naming a defect but blinds a good-part memory
    to a dark blotch on plain steel; these four numbers give that back.
    """
    gray = image.mean(1, keepdim=True)
    gray = gray - gray.mean((2, 3), keepdim=True)  # centred: E[g²] - E[g]² rounds less
    mean = F.avg_pool2d(image, patch)  # (B, 3, h, w)
    variance = F.avg_pool2d(gray * gray, patch) - F.avg_pool2d(gray, patch) ** 2
    # sqrt is steep at 0: on a flat cell the floor keeps rounding from moving the contrast
    contrast = (variance.clamp_min(0) + _CONTRAST_FLOOR**2).sqrt()
    cells = torch.cat([mean, contrast], dim=1)  # (B, 4, h, w)
    cells = F.avg_pool2d(cells, 3, stride=1, padding=1, count_include_pad=False)
    return cells.flatten(2).transpose(1, 2)  # (B, Ni, 4)


def token_positions(n: int) -> Tensor:
    """(n, 2) positions in [0, 1]: row and column of a square grid, else (index, 0)."""
    n = int(n)  # a traced shape is a tensor; the token count is fixed in the graph
    side = math.isqrt(n)
    idx = torch.arange(n, dtype=torch.float32)
    if side * side == n and side > 1:
        return torch.stack([torch.div(idx, side, rounding_mode="floor"), idx % side], -1) / (
            side - 1
        )
    return torch.stack([idx / max(n - 1, 1), torch.zeros(n)], -1)


def _pool(dist: Tensor, top_k: int) -> Tensor:
    """A part's score from its patch distances `(B, P)`: the mean of the `top_k` largest."""
    k = min(top_k, dist.shape[-1])
    return dist.topk(k, dim=-1).values.mean(-1)


def robust_spread(x: Tensor) -> Tensor:
    """A spread that one odd good part cannot blow up: 1.4826 × MAD, floored by the std / 10."""
    x = x.float()
    mad = (x - x.median()).abs().median() * 1.4826
    floor = x.std(unbiased=False) / 10.0 + 1e-6
    return torch.maximum(mad, floor)
