"""Pretraining objectives: augmentation keeps masks aligned, losses are finite and train."""

from __future__ import annotations

import torch

from models.backbone import InspectBackbone
from models.config import BackboneConfig
from models.pretraining import (
    AnomalyBatch,
    PretrainBatch,
    PretrainModel,
    augment_images,
    memory_distances,
    patch_targets,
    patchify,
    spread_loss,
)


def _effective_rank(x: torch.Tensor) -> float:
    sv = torch.linalg.svdvals(x - x.mean(0))
    p = sv / sv.sum()
    return float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))


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


def test_a_group_shares_its_augmentation() -> None:
    """Parts of one line get one crop, turn and light; another line gets its own."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, 64, 64, generator=g).expand(6, -1, -1, -1).contiguous()
    masks = torch.zeros(6, 1, 64, 64)
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    out, _ = augment_images(base, masks, torch.Generator().manual_seed(3), groups)
    same = (out[0] - out[1]).abs().mean()  # only the sensor noise differs
    other = (out[0] - out[3]).abs().mean()
    assert float(same) < 0.05 and float(other) > 3 * float(same)


def test_memory_distance_skips_the_part_itself() -> None:
    """A good part is compared with the other good parts, never with itself."""
    f = torch.zeros(3, 2, 4)
    f[:, :, 0] = 1.0  # every patch points the same way...
    f[0, 1] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # ...except one patch of part 0
    f[2, 0] = torch.tensor([0.0, 0.0, 1.0, 0.0])  # and a defect patch on part 2
    d = memory_distances(f, torch.tensor([True, True, False]))
    assert d.shape == (3, 2)
    assert float(d[0, 1]) > 1.0  # part 1 has no such patch; part 0's own copy does not count
    assert float(d[1, 0]) < 1e-3 and float(d[2, 1]) < 1e-3
    assert abs(float(d[2, 0]) - 2**0.5) < 1e-3  # orthogonal unit vectors


def test_memory_objective_trains_the_backbone() -> None:
    """The grouped-batch loss is finite, reaches the backbone and falls on a fixed batch."""
    torch.manual_seed(0)
    model = PretrainModel(
        InspectBackbone(BackboneConfig.named("tiny")), n_classes=3, anomaly_weight=1.0
    )
    g = torch.Generator().manual_seed(0)
    images = 0.5 + 0.05 * torch.randn(6, 3, 128, 128, generator=g)
    masks = torch.zeros(6, 1, 128, 128)
    images[[2, 5], :, 30:50, 30:50] = 1.0  # one bright defect per line
    masks[[2, 5], :, 30:50, 30:50] = 1.0
    grouped = AnomalyBatch(images.clamp(0, 1), masks, torch.tensor([0, 0, 0, 1, 1, 1]))
    first = model(_batch(), grouped)
    assert first.anomaly is not None and torch.isfinite(first.anomaly)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(6):
        loss, _ = model.anomaly_loss(grouped)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.backbone.embed.image_patches.stem[0].weight.grad is not None
    loss, separation = model.anomaly_loss(grouped)
    assert loss.item() < first.anomaly.item() and separation > first.anomaly_separation
    # a line with fewer than two good parts has no memory: it is skipped, not a crash
    lone = AnomalyBatch(images[:2].clamp(0, 1), masks[[0, 2]], torch.tensor([0, 0]))
    assert model.anomaly_loss(lone)[0].item() == 0.0


def test_memory_distance_keeps_float32_under_autocast() -> None:
    """Close neighbours (distance ~0.01) are resolved even inside a bfloat16 autocast region."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 64, 32, generator=g)
    f = torch.cat([base, base + 0.005 * torch.randn(1, 64, 32, generator=g)])
    unit = torch.nn.functional.normalize(f.double(), dim=-1)
    exact = torch.cdist(unit[0], unit[1]).min(1).values  # part 0 against part 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = memory_distances(f, torch.tensor([True, True]))
    assert mixed.dtype == torch.float32 and float(exact.min()) > 1e-3
    assert torch.allclose(mixed[0].double(), exact, atol=1e-4)


def test_spread_loss_is_low_for_rich_tokens_and_high_for_collapsed_ones() -> None:
    g = torch.Generator().manual_seed(0)
    rich = torch.randn(4000, 16, generator=g)  # unit variance, uncorrelated
    collapsed = torch.randn(4000, 1, generator=g) * torch.ones(1, 16)  # one direction
    assert spread_loss(rich).item() < 0.05
    assert spread_loss(collapsed).item() > 10 * spread_loss(rich).item()
    assert spread_loss(rich[:1]).item() == 0.0  # one token has no spread to measure


def test_spread_loss_raises_the_effective_rank_it_is_trained_on() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(512, 16, generator=g)
    squeeze = torch.nn.Linear(16, 16, bias=False)
    with torch.no_grad():  # start nearly rank 2
        squeeze.weight.copy_(torch.randn(16, 2, generator=g) @ torch.randn(2, 16, generator=g))
        squeeze.weight.add_(0.01 * torch.randn(16, 16, generator=g))
    before = _effective_rank(squeeze(z).detach())
    opt = torch.optim.Adam(squeeze.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        spread_loss(squeeze(z)).backward()
        opt.step()
    after = _effective_rank(squeeze(z).detach())
    assert before < 4 and after > 8  # of 16: the squeeze is undone


def test_the_spread_term_joins_the_total_only_when_weighted() -> None:
    torch.manual_seed(0)
    backbone = InspectBackbone(BackboneConfig.named("tiny"))
    batch = _batch()
    plain = PretrainModel(backbone, n_classes=3)
    spread = PretrainModel(backbone, n_classes=3, spread_weight=2.0)
    spread.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    a = plain(batch)
    torch.manual_seed(1)
    b = spread(batch)
    assert a.spread is None and b.spread is not None
    torch.testing.assert_close(b.total, a.total + 2.0 * b.spread)


def test_the_patch_class_term_asks_each_defect_patch_for_the_part_class() -> None:
    torch.manual_seed(0)
    backbone = InspectBackbone(BackboneConfig.named("tiny"))
    batch = _batch(masked=False)
    plain = PretrainModel(backbone, n_classes=3)
    assert plain.patch_class_head is None and plain(batch).patch_class is None
    model = PretrainModel(backbone, n_classes=3, patch_class_weight=0.5)
    model.load_state_dict(plain.state_dict(), strict=False)
    torch.manual_seed(1)
    a = plain(batch)
    torch.manual_seed(1)
    b = model(batch)
    assert b.patch_class is not None and torch.isfinite(b.patch_class)
    torch.testing.assert_close(b.total, a.total + 0.5 * b.patch_class)
    b.patch_class.backward()
    assert backbone.layers[-1].attn.qkv.weight.grad is not None  # it reaches the tokens

    # the target: the part's label on defect patches, ok (0) elsewhere. Part 0's defect is
    # patch 1 (feature 0), part 1's is patch 2 (feature 1)
    tokens = torch.zeros(2, 4, backbone.config.hidden_size)
    tokens[0, 1, 0] = 1.0
    tokens[1, 2, 1] = 1.0
    target = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    labels = torch.tensor([1, 2])
    on = torch.ones(2, 4, dtype=torch.bool)
    head = model.patch_class_head
    assert head is not None
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([8.0, 0.0, 0.0]))  # says ok everywhere: wrong at defects
        wrong = model.patch_class_loss(tokens, target, labels, on)
        good_patches = model.patch_class_loss(tokens, target, labels, on & (target == 0))
        head.weight[1, 0], head.weight[2, 1] = 20.0, 20.0  # names each defect as its part's
        right = model.patch_class_loss(tokens, target, labels, on)
        swapped = model.patch_class_loss(tokens, target, labels.flip(0), on)
    assert float(good_patches) < 0.01  # good patches said ok: nothing to learn there
    assert float(right) < 0.01 < float(wrong) < float(swapped)
    # parts without a label are not asked
    none = model.patch_class_loss(tokens, target, torch.tensor([-1, -1]), on)
    assert float(none) == 0.0
