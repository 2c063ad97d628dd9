"""Pretraining objectives: augmentation keeps masks aligned, losses are finite and train."""

from __future__ import annotations

import torch

from models.backbone import InspectBackbone
from models.config import BackboneConfig
from models.pretraining import (
    PretrainBatch,
    PretrainModel,
    augment_images,
    patch_targets,
    patchify,
)


def _batch(b: int = 4, masked: bool = True) -> PretrainBatch:
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(b, 1, 128, 128)
    masks[:, :, 40:60, 40:60] = 1.0
    return PretrainBatch(
        images=torch.rand(b, 3, 128, 128, generator=g),
        masks=masks,
        has_mask=torch.tensor([True] * b),
        spectra=torch.randn(b, 2, 128, generator=g),
        image_present=torch.tensor([True] * (b - 1) + [False]),
        vibration_present=torch.tensor([True] * b),
        labels=torch.tensor([0, 1, 2, -1][:b]),
        masked_patches=torch.tensor([False, False, masked, masked][:b]),
    )


def test_augmentation_moves_mask_with_image() -> None:
    """A bright square and its mask stay on the same pixels after the geometric transform."""
    images = torch.zeros(8, 3, 64, 64)
    images[:, :, 10:30, 20:40] = 1.0
    masks = images[:, :1].clone()
    out, out_masks = augment_images(images, masks, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out_masks.shape == masks.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    inside = out.mean(1, keepdim=True)[out_masks > 0.5].mean()
    outside = out.mean(1, keepdim=True)[out_masks < 0.5].mean()
    assert float(inside) > float(outside) + 0.2


def test_patch_targets_and_patchify_shapes() -> None:
    masks = torch.zeros(2, 1, 128, 128)
    masks[0, 0, :8, :8] = 1
    t = patch_targets(masks, 8)
    assert t.shape == (2, 256) and float(t[0, 0]) == 1 and float(t.sum()) == 1
    p = patchify(torch.rand(2, 3, 128, 128), 8)
    assert p.shape == (2, 256, 192)


def test_losses_finite_and_a_step_lowers_them() -> None:
    torch.manual_seed(0)
    model = PretrainModel(InspectBackbone(BackboneConfig.named("tiny")), n_classes=3)
    batch = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = model(batch)
    for v in (first.total, first.cls, first.defect_map, first.masked_patch):
        assert torch.isfinite(v)
    assert first.masked_patch.item() > 0
    for _ in range(8):
        torch.manual_seed(1)
        losses = model(batch)
        opt.zero_grad()
        losses.total.backward()
        opt.step()
    torch.manual_seed(1)
    assert model(batch).total.item() < first.total.item()
    assert model.backbone.embed.mask_token.grad is not None
