"""The good parts' spectrum, bin by bin: how far above its good range each frequency is.

Vibration monitoring's statistical alarm bands, learned from the good adapt parts: every bin of
the line's spectrum features (the log PSD and the log envelope spectrum, `sensors.spectrum`)
gets the good parts' mean and spread, and a part is scored by how many spreads its bins stand
above that mean. A bearing fault is one line in the envelope spectrum (its BPFO or BPFI and a
few harmonics); imbalance raises one shaft harmonic. Among a band's other bins, where the
spectrum memory (`models.anomaly.PatchMemory` on the bands) measures a nearest-neighbour
distance, one raised bin is diluted by the noise of the rest; bin by bin it stands out.

Only rises count: a fault adds energy (impacts, a harmonic, a resonance rung), and each window's
spectrum is offset by its own median (`sensors.spectrum`), so a raised band lowers every other
bin a little; counting falls too would score that. A part's score is the mean of its `top_k`
largest excesses; each band of `band` bins (the spectrum tokens' width) gets its largest one.
Scores are standardized by the good parts' leave-out scores, as the memories' are
(`models.anomaly`), so "3" means three spreads above a typical good part.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.anomaly import MemoryScores, leave_out_groups, standardization, standardized

TOP_K = 8  # bins averaged into a part's score: a fault's line and a few of its harmonics
# A bin's spread is at least this, in the spectrum features' units (their across-bin spread
# on good CWRU windows is 1): a bin that barely moved over the good parts (a frequency the
# line's sensor does not measure reads as a constant) must not turn a rounding into a defect
SPREAD_FLOOR = 0.05


class SpectrumTemplate(nn.Module):
    """Per-bin mean and spread of the good parts' spectra `(N, C, F)`, and the excess over them.

    Fit it with `fit(spectra)`; calling it on `(B, C, F)` gives standardized scores: per part
    `(B,)` and per band `(B, F / band)`.
    """

    def __init__(self, channels: int, bins: int, band: int, top_k: int = TOP_K) -> None:
        super().__init__()
        if bins % band:
            msg = f"spectrum bins ({bins}) must be a multiple of the band width ({band})"
            raise ValueError(msg)
        self.band = band
        self.top_k = min(top_k, channels * bins)
        self.register_buffer("mean", torch.zeros(channels, bins))
        self.register_buffer("spread", torch.ones(channels, bins))
        # standardization of part scores and of band scores, from the good parts
        self.register_buffer("stats", torch.tensor([0.0, 1.0, 0.0, 1.0]))
        # the fitted good parts' standardized leave-out scores, in the order `fit` took them:
        # what each would score as a new part (adapt's out-of-fold scores); not saved
        self.leave_out: Tensor | None = None

    mean: Tensor
    spread: Tensor
    stats: Tensor

    @staticmethod
    def _moments(spectra: Tensor) -> tuple[Tensor, Tensor]:
        mean = spectra.mean(0)
        spread = spectra.std(0, unbiased=False) if spectra.shape[0] > 1 else torch.zeros_like(mean)
        return mean, spread.clamp_min(SPREAD_FLOOR)

    def _excess(self, spectra: Tensor, mean: Tensor, spread: Tensor) -> MemoryScores:
        z = (spectra.float() - mean) / spread  # (B, C, F)
        B, C, F_ = z.shape
        part = z.reshape(B, C * F_).topk(self.top_k, dim=-1).values.mean(-1)
        bands = z.reshape(B, C, F_ // self.band, self.band).amax(dim=(1, 3))  # (B, F / band)
        return MemoryScores(score=part, patch_scores=bands)

    def fit(self, spectra: Tensor, groups: Tensor | None = None) -> None:
        """Learn the good parts' spectra `(N, C, F)` and standardize the scores they give.

        `groups (N,)` assigns each part to a fold: each part is scored against the mean and
        spread of the other folds' parts (its own would hide its own peaks). Without groups
        the parts are dealt into 5 folds.
        """
        if (
            spectra.ndim != 3
            or spectra.shape[0] == 0
            or tuple(spectra.shape[1:]) != tuple(self.mean.shape)
        ):
            msg = (
                f"good-part spectra must be (N>0, {self.mean.shape[0]}, {self.mean.shape[1]}), "
                f"got {tuple(spectra.shape)}"
            )
            raise ValueError(msg)
        x = spectra.float()
        self.mean, self.spread = self._moments(x)
        self.leave_out = None
        n = x.shape[0]
        if n < 3:
            return  # too few good parts to measure a spread without each one: scores stay raw
        groups = leave_out_groups(n, groups)
        part_scores = torch.empty(n)
        band_scores = torch.empty(n, self.mean.shape[1] // self.band)
        for g in torch.unique(groups):
            held = groups == g
            rest = x[~held] if int((~held).sum()) >= 2 else x
            scores = self._excess(x[held], *self._moments(rest))
            part_scores[held] = scores.score
            band_scores[held] = scores.patch_scores
        self.stats, self.leave_out = standardization(MemoryScores(part_scores, band_scores))

    def forward(self, spectra: Tensor) -> MemoryScores:
        return standardized(self._excess(spectra, self.mean, self.spread), self.stats)
