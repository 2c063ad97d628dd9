"""Pretraining objectives for the backbone (pure torch; the data side lives in inspect_app).

One step trains these at once (the first three always, the rest when weighted):
- part class from the class token (cross-entropy over every pretraining label: synthetic defect
  classes, real NEU-DET and CWRU classes, and `ok`), with modality dropout so each sensor
  learns to judge a part alone;
- the per-patch defect map (`backbone.defect_map`) against pixel masks pooled to patches
  (synthetic masks, NEU-DET boxes);
- masked-patch prediction on images (MAE-style: hide a share of patches behind the mask token
  and regress their normalized pixels): it needs no labels, so real textures teach features
  the generator cannot;
- optionally (`anomaly_weight > 0`), the good-part memory itself: parts come in groups from one
  line, each patch's `patch_features` are compared with the nearest patch of the line's other
  good parts (the distance a taught line's memory scores, see models/anomaly.py), and a
  pairwise logistic ranking loss asks each defect patch to lie farther than the line's hardest
  good patches. Part-to-part variation of good parts is what the features learn to ignore; a
  defect is what they learn to keep apart.
- optionally (`spread_weight > 0`), a spread term on the image tokens (VICReg's variance and
  covariance terms): each feature's spread over the batch's patches is kept up to 1 and the
  features decorrelated, so supervision on the generator's classes cannot squeeze the tokens
  into the few directions those classes need (docs/backbone.md measures that squeeze as the
  tokens' effective rank).
- optionally (`patch_class_weight > 0`), the part's class at every patch (`patch_class_head`):
  each visible patch of a part with a mask is asked for the part's class where the mask covers
  it and `ok` elsewhere. The per-patch defect map only asks "defect or not", so the patch tokens
  at a defect's place need not say *which* defect; the class was the class token's business.
  A taught line's classifier reads those tokens at the defect site (defect-site pooling,
  models/line_model.py), so this asks the tokens for what the line model reads.

Images are augmented on the fly, photometrically (brightness, contrast, gamma, colour, gray,
blur, noise) and geometrically (flips, 90-degree turns, crops), the same way for the masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.backbone import InspectBackbone
from models.heads import ClassHead
from models.inputs import IMAGE_MEAN, IMAGE_STD


@dataclass
class PretrainBatch:
    """One training batch; labels of -1 and False flags switch a loss off for that part."""

    images: torch.Tensor  # (B, 3, S, S) float in [0, 1], before normalization
    masks: torch.Tensor  # (B, 1, S, S) float {0, 1} defect pixels
    has_mask: torch.Tensor  # (B,) bool
    spectra: torch.Tensor  # (B, 2, F)
    image_present: torch.Tensor  # (B,) bool
    vibration_present: torch.Tensor  # (B,) bool
    labels: torch.Tensor  # (B,) long class index, -1 = no class loss
    masked_patches: torch.Tensor  # (B,) bool: train masked-patch prediction on this part


@dataclass
class PretrainLosses:
    """The objectives of one step and their weighted sum."""

    total: torch.Tensor
    cls: torch.Tensor
    defect_map: torch.Tensor
    masked_patch: torch.Tensor
    class_accuracy: float
    anomaly: torch.Tensor | None = None  # the memory objective, when a grouped batch was given
    anomaly_separation: float = float("nan")  # defect minus good patch distance (mean)
    spread: torch.Tensor | None = None  # the spread term, when spread_weight > 0
    patch_class: torch.Tensor | None = None  # the per-patch class term, when weighted


@dataclass
class AnomalyBatch:
    """Parts grouped by line for the memory objective: images, masks and each part's group."""

    images: torch.Tensor  # (B, 3, S, S) float in [0, 1], augmented alike within a group
    masks: torch.Tensor  # (B, 1, S, S) float {0, 1}; all zero = a good image
    groups: torch.Tensor  # (B,) long, 0..G-1: parts of one line share a group


_DEFECT_PATCH_WEIGHT = 4.0  # a defect patch counts this many clean ones (map and patch class)
_HARD_NEGATIVES = 32  # a good part's patches that rank against each defect patch, per line
_RANK_TEMPERATURE = 0.1  # of the line's mean good-patch distance


def augment_images(
    images: torch.Tensor,
    masks: torch.Tensor,
    generator: torch.Generator | None = None,
    groups: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Strong photometric + geometric augmentation of images (B,3,S,S) in [0,1] and masks.

    `groups` (B,) long, 0..G-1: parts of one group get the same crop, turn, light and colour
    (one line seen by one camera); only the sensor noise differs. Default: every part alone.
    """
    B, _, S, _ = images.shape
    dev = images.device
    if groups is None:
        groups = torch.arange(B, device=dev)
    n_groups = int(groups.max()) + 1 if B else 0

    def rand(*shape: int) -> torch.Tensor:  # (B, *shape): one draw per group, to its parts
        return torch.rand(n_groups, *shape, generator=generator, device=dev)[groups]

    # geometric: random crop (scale 0.6-1), flips and 90-degree turns as one affine grid
    scale = 0.6 + 0.4 * rand()
    shift = (1 - scale).unsqueeze(1) * (2 * rand(2) - 1)  # (B, 2)
    turns = (rand() * 4).floor()
    cos, sin = torch.cos(turns * math.pi / 2), torch.sin(turns * math.pi / 2)
    flip = torch.where(rand() < 0.5, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0] = cos * scale * flip
    theta[:, 0, 1] = -sin * scale
    theta[:, 1, 0] = sin * scale * flip
    theta[:, 1, 1] = cos * scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, [B, 3, S, S], align_corners=False)  # (B, S, S, 2)
    images = F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    masks = F.grid_sample(masks, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    # photometric
    gray = images.mean(dim=1, keepdim=True)  # (B, 1, S, S)
    images = torch.where(rand(1, 1, 1) < 0.3, gray.expand_as(images), images)
    images = images * (0.85 + 0.3 * rand(3, 1, 1))  # colour / white balance
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * (0.6 + 0.8 * rand(1, 1, 1)) + mean  # contrast
    images = images + 0.3 * (rand(1, 1, 1) - 0.5)  # brightness
    images = images.clamp(0, 1) ** (0.7 + 0.6 * rand(1, 1, 1))  # gamma
    blur = rand(1, 1, 1) < 0.3
    images = torch.where(blur, F.avg_pool2d(images, 3, 1, 1, count_include_pad=False), images)
    noise = torch.randn(images.shape, generator=generator, device=dev)
    images = images + noise * 0.03 * rand(1, 1, 1)
    return images.clamp(0, 1), masks


def memory_distances(features: torch.Tensor, good: torch.Tensor) -> torch.Tensor:
    """Per patch, the distance to the nearest patch of the *other* good parts of the group.

    `features` (K, N, D) of one group's parts, `good` (K,) bool: which parts are good. Features
    are compared at unit length, as the line model's memory compares them. Returns (K, N).
    """
    K, N, _ = features.shape
    f = F.normalize(features.float(), dim=-1)
    bank = f[good].reshape(-1, f.shape[-1])  # (G*N, D)
    owner = torch.arange(K, device=f.device)[good].repeat_interleave(N)  # (G*N,)
    # in float32 even under autocast: near neighbours differ in the third decimal of `sim`
    with torch.autocast(f.device.type, enabled=False):
        sim = f.reshape(K * N, -1) @ bank.T  # (K*N, G*N)
    own = torch.arange(K, device=f.device).repeat_interleave(N).unsqueeze(1) == owner
    sim = sim.masked_fill(own, -2.0)  # a part is never its own memory
    d2 = (2.0 - 2.0 * sim.max(dim=1).values).clamp_min(1e-8)  # unit vectors
    return d2.sqrt().view(K, N)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images to the backbone's input normalization."""
    mean = images.new_tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def patch_targets(masks: torch.Tensor, patch: int, min_fraction: float = 0.05) -> torch.Tensor:
    """Pixel masks (B,1,S,S) to per-patch defect targets (B, Ni): defect share >= min_fraction."""
    share = F.avg_pool2d(masks, patch)  # (B, 1, h, w)
    return (share >= min_fraction).float().flatten(1)  # (B, Ni)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, 3, S, S) -> (B, Ni, 3*p*p), each patch's pixels normalized to zero mean, unit std."""
    B, C = images.shape[:2]
    x = images.unfold(2, patch, patch).unfold(3, patch, patch)  # (B, C, h, w, p, p)
    x = x.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C * patch * patch)  # (B, Ni, C*p*p)
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-4)


def spread_loss(tokens: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's variance + covariance terms on tokens (N, D): each feature's standard deviation
    held up to 1 (hinge), and the squared off-diagonal covariances summed over D. Zero for
    fewer than two tokens."""
    if tokens.shape[0] < 2:
        return tokens.sum() * 0.0
    x = tokens.float() - tokens.float().mean(dim=0)
    std = torch.sqrt(x.var(dim=0) + eps)
    variance = F.relu(1.0 - std).mean()
    n, d = x.shape
    cov = (x.T @ x) / (n - 1)  # (D, D)
    off = cov - torch.diag(torch.diagonal(cov))
    return variance + off.pow(2).sum() / d


class PretrainModel(nn.Module):
    """The backbone plus the pretraining heads; `forward(batch)` returns the losses."""

    def __init__(
        self,
        backbone: InspectBackbone,
        n_classes: int,
        mask_ratio: float = 0.4,
        map_weight: float = 1.0,
        masked_patch_weight: float = 1.0,
        anomaly_weight: float = 0.0,
        spread_weight: float = 0.0,
        patch_class_weight: float = 0.0,
    ) -> None:
        super().__init__()
        cfg = backbone.config
        self.backbone = backbone
        self.class_head = ClassHead(cfg.hidden_size, n_classes)
        self.pixel_head = nn.Linear(cfg.hidden_size, 3 * cfg.patch_size**2)
        self.mask_ratio = mask_ratio
        self.map_weight = map_weight
        self.masked_patch_weight = masked_patch_weight
        self.anomaly_weight = anomaly_weight
        self.spread_weight = spread_weight
        self.patch_class_weight = patch_class_weight
        # only when weighted: checkpoints of runs without it keep loading as they are
        self.patch_class_head = (
            nn.Linear(cfg.hidden_size, n_classes) if patch_class_weight > 0 else None
        )

    def patch_class_loss(
        self, tokens: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, on: torch.Tensor
    ) -> torch.Tensor:
        """Cross-entropy of the per-patch class: the part's label (B,) where `target` (B, Ni)
        marks a defect patch, class 0 (`ok`) elsewhere; over the patches `on` (B, Ni) of parts
        with a known label, a defect patch weighing `_DEFECT_PATCH_WEIGHT`."""
        assert self.patch_class_head is not None
        on = on & (labels >= 0).unsqueeze(1)
        if not on.any():
            return tokens.sum() * 0.0
        defect = target > 0
        wanted = torch.where(defect, labels.clamp_min(0).unsqueeze(1), 0)  # (B, Ni)
        logits = self.patch_class_head(tokens[on])  # (M, C)
        ce = F.cross_entropy(logits.float(), wanted[on], reduction="none")
        weight = torch.where(defect[on], _DEFECT_PATCH_WEIGHT, 1.0)
        return (ce * weight).sum() / weight.sum()

    def anomaly_loss(self, batch: AnomalyBatch) -> tuple[torch.Tensor, float]:
        """The memory objective on a grouped batch: (loss, mean defect minus good distance).

        Per line: every defect patch should lie farther from the other good parts than the
        hardest patches of the good parts themselves (the ones that would raise a false
        alarm). A pairwise logistic ranking loss, its temperature a share of the line's typical
        distance, so the features' scale is free. Lines with fewer than two good parts, or no
        defect patch, have nothing to rank and are skipped.
        """
        cfg = self.backbone.config
        out = self.backbone.forward_features(image=normalize_images(batch.images))
        target = patch_targets(batch.masks, cfg.patch_size) > 0  # (B, Ni)
        good_part = batch.masks.flatten(1).amax(1) == 0  # (B,)
        # which groups can rank, decided on the host once (no device sync per group)
        groups = batch.groups.cpu()
        n_good = torch.bincount(groups, weights=good_part.cpu().float())
        n_defect = torch.bincount(groups, weights=target.any(1).cpu().float())
        losses, separation = [], []
        for g in torch.nonzero((n_good >= 2) & (n_defect > 0)).flatten().tolist():
            members = batch.groups == g
            good = good_part[members]
            d = memory_distances(out.patch_features[members], good)  # (K, Ni)
            pos = d[target[members]]  # defect patches
            normal = d[good].flatten()  # patches of the good parts
            hard = normal.topk(min(_HARD_NEGATIVES, normal.numel())).values
            tau = (_RANK_TEMPERATURE * normal.mean()).detach().clamp_min(1e-4)
            losses.append(F.softplus((hard.unsqueeze(0) - pos.unsqueeze(1)) / tau).mean())
            separation.append((pos.mean() - normal.mean()).detach())
        if not losses:
            return out.patch_features.sum() * 0.0, float("nan")
        return torch.stack(losses).mean(), float(torch.stack(separation).mean())

    def forward(self, batch: PretrainBatch, grouped: AnomalyBatch | None = None) -> PretrainLosses:
        cfg = self.backbone.config
        B = batch.images.shape[0]
        n_img = cfg.num_image_tokens
        hide = (torch.rand(B, n_img, device=batch.images.device) < self.mask_ratio) & (
            batch.masked_patches & batch.image_present
        ).unsqueeze(1)  # (B, Ni)
        out = self.backbone.forward_features(
            image=normalize_images(batch.images),
            spectrum=batch.spectra,
            image_present=batch.image_present,
            vibration_present=batch.vibration_present,
            image_token_mask=hide,
        )
        zero = out.cls.sum() * 0.0
        # part class (not for parts whose patches are hidden)
        logits = self.class_head(out.cls)  # (B, C)
        labels = torch.where(batch.masked_patches, -1, batch.labels)
        has_label = labels >= 0
        cls_loss = F.cross_entropy(logits, labels, ignore_index=-1) if has_label.any() else zero
        correct = (logits.argmax(-1) == labels)[has_label]
        accuracy = float(correct.float().mean()) if has_label.any() else float("nan")
        # per-patch defect map, on visible patches of parts with a known mask
        defect_logits = self.backbone.defect_map(out.image_tokens)  # (B, Ni)
        target = patch_targets(batch.masks, cfg.patch_size)  # (B, Ni)
        map_on = (batch.has_mask & batch.image_present).unsqueeze(1) & ~hide  # (B, Ni)
        if map_on.any():
            map_loss = F.binary_cross_entropy_with_logits(
                defect_logits[map_on],
                target[map_on],
                pos_weight=logits.new_tensor(_DEFECT_PATCH_WEIGHT),
            )
        else:
            map_loss = zero
        # masked-patch prediction
        if hide.any():
            pixels = patchify(batch.images, cfg.patch_size)  # (B, Ni, 3*p*p)
            pred = self.pixel_head(out.image_tokens)  # (B, Ni, 3*p*p)
            mp_loss = F.mse_loss(pred[hide], pixels[hide])
        else:
            mp_loss = zero
        total = cls_loss + self.map_weight * map_loss + self.masked_patch_weight * mp_loss
        spread = None
        if self.spread_weight > 0:
            visible = (batch.image_present.unsqueeze(1) & ~hide).flatten()  # (B*Ni,)
            spread = spread_loss(out.image_tokens.flatten(0, 1)[visible])
            total = total + self.spread_weight * spread
        patch_class = None
        if self.patch_class_head is not None:
            # the part's own label (also on parts whose class loss is off to train masked
            # patches), asked of the visible patches only
            patch_class = self.patch_class_loss(out.image_tokens, target, batch.labels, map_on)
            total = total + self.patch_class_weight * patch_class
        if grouped is None or self.anomaly_weight == 0:
            return PretrainLosses(
                total,
                cls_loss,
                map_loss,
                mp_loss,
                accuracy,
                spread=spread,
                patch_class=patch_class,
            )
        anomaly, separation = self.anomaly_loss(grouped)
        total = total + self.anomaly_weight * anomaly
        return PretrainLosses(
            total, cls_loss, map_loss, mp_loss, accuracy, anomaly, separation, spread, patch_class
        )
