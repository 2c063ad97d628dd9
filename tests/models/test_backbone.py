"""The backbone over every named size: shapes, no NaN, masks, gradients, save/load, static MoE."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models.backbone import InspectBackbone, TokenMerge, coarsen_patch_state, merge_state
from models.config import SIZES, BackboneConfig


def _batch(cfg: BackboneConfig, b: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(b, 3, cfg.image_size, cfg.image_size, generator=g),
        "spectrum": torch.randn(b, 2, cfg.spectrum_bins, generator=g),
    }


@pytest.fixture(scope="module", params=sorted(SIZES))
def model(request: pytest.FixtureRequest) -> InspectBackbone:
    torch.manual_seed(0)
    return InspectBackbone(BackboneConfig.named(request.param)).eval()


def test_output_shapes_and_no_nan(model: InspectBackbone) -> None:
    cfg = model.config
    prompts = torch.randn(2, 3, cfg.hidden_size)
    out = model(**_batch(cfg), inputs_embeds=prompts)
    rows, cols = cfg.grid
    assert out.cls.shape == (2, cfg.hidden_size)
    assert out.image_tokens.shape == (2, rows * cols, cfg.hidden_size)
    assert out.spectrum_tokens.shape == (2, cfg.num_spectrum_tokens, cfg.hidden_size)
    assert out.prompt_tokens.shape == (2, 3, cfg.hidden_size)
    assert out.patch_features.shape == (2, rows * cols, cfg.patch_feature_dim)
    assert out.defect_logits is not None and out.defect_logits.shape == (2, rows * cols)
    for t in (out.cls, out.image_tokens, out.spectrum_tokens, out.patch_features):
        assert torch.isfinite(t).all()


def test_every_block_gates_each_head_in_the_open_unit_interval(model: InspectBackbone) -> None:
    """The gates each block's attention applies, on the tokens it really sees (with prompts,
    both sensors, and in `tinym`'s last blocks the merged tokens): one per token and head,
    strictly inside (0, 1), and not one value for every head."""
    cfg = model.config
    seen: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.append(module.head_gates(args[0], args[1]))  # type: ignore[operator]

    hooks = [layer.attn.register_forward_pre_hook(keep) for layer in model.layers]
    try:
        with torch.no_grad():
            model(**_batch(cfg), inputs_embeds=torch.randn(2, 3, cfg.hidden_size))
    finally:
        for hook in hooks:
            hook.remove()
    merged = cfg.merge_after if cfg.merge_after is not None else cfg.num_hidden_layers
    tokens = [
        3 + 1 + cfg.num_image_tokens // (1 if i <= merged else 4) + cfg.num_spectrum_tokens
        for i in range(cfg.num_hidden_layers)
    ]
    assert [g.shape[2] for g in seen] == tokens
    for gates in seen:
        assert gates.shape[:2] == (2, cfg.num_attention_heads) and gates.shape[-1] == 1
        assert bool(((gates > 0) & (gates < 1)).all())
        assert float(gates.std(dim=1).max()) > 0  # heads gated apart


def test_tiny_meets_the_token_grid_the_heatmap_needs() -> None:
    cfg = BackboneConfig.named("tiny")
    assert cfg.grid == (16, 16)
    assert cfg.spectrum_bins == 128  # sensors.spectrum.SpectrumConfig().n_bins


def test_missing_modality_has_no_tokens(model: InspectBackbone) -> None:
    cfg = model.config
    batch = _batch(cfg)
    only_image = model(image=batch["image"])
    assert only_image.spectrum_tokens.shape[1] == 0
    only_vibration = model(spectrum=batch["spectrum"])
    assert only_vibration.image_tokens.shape[1] == 0
    assert only_vibration.patch_features.shape == (2, 0, cfg.patch_feature_dim)
    assert torch.isfinite(only_vibration.cls).all()


def test_absent_modality_mask_equals_leaving_it_out(model: InspectBackbone) -> None:
    """A part with image_present=False scores as if it had no image tokens at all."""
    batch = _batch(model.config)
    present = torch.tensor([True, False])
    masked = model(
        **batch, image_present=present, vibration_present=torch.ones(2, dtype=torch.bool)
    )
    without = model(spectrum=batch["spectrum"][1:])
    torch.testing.assert_close(masked.cls[1:], without.cls, atol=1e-5, rtol=1e-4)
    # and what the absent image holds does not matter
    batch2 = dict(batch, image=batch["image"].clone())
    batch2["image"][1] = 7.0
    masked2 = model(**batch2, image_present=present)
    torch.testing.assert_close(masked2.cls[1], masked.cls[1], atol=1e-5, rtol=1e-4)


def test_gradients_reach_trainable_and_not_frozen(model: InspectBackbone) -> None:
    m = InspectBackbone(model.config).train()
    for p in m.embed.parameters():
        p.requires_grad_(False)
    out = m(**_batch(m.config, b=1))
    (out.cls.sum() + out.patch_features.mean() + out.defect_logits.sum()).backward()
    for name, p in m.named_parameters():
        if name.startswith("embed."):
            assert p.grad is None, name
    assert m.layers[0].attn.qkv.weight.grad is not None
    assert m.layers[-1].ffn.shared_experts.w1.weight.grad is not None
    assert m.defect_map.fc.weight.grad is not None
    assert float(m.layers[0].attn.qkv.weight.grad.abs().sum()) > 0


def test_sparse_and_static_moe_agree(model: InspectBackbone) -> None:
    batch = _batch(model.config)
    with torch.no_grad():
        model.set_static_moe(False)
        sparse = model(**batch)
        model.set_static_moe(True)
        static = model(**batch)
        model.set_static_moe(False)
    torch.testing.assert_close(sparse.cls, static.cls, atol=1e-5, rtol=0)
    torch.testing.assert_close(sparse.image_tokens, static.image_tokens, atol=1e-5, rtol=0)


def test_save_load_round_trip_is_exact(model: InspectBackbone, tmp_path: Path) -> None:
    gate = model.moe_gates()[0]
    gate.routing_bias.copy_(torch.linspace(-0.1, 0.1, gate.routing_bias.numel()))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    loaded = InspectBackbone.from_pretrained(tmp_path).eval()
    batch = _batch(model.config)
    with torch.no_grad():
        a, b = model(**batch), loaded(**batch)
    assert torch.equal(a.cls, b.cls)
    assert torch.equal(a.patch_features, b.patch_features)
    assert torch.equal(loaded.moe_gates()[0].routing_bias, gate.routing_bias)
    gate.routing_bias.zero_()


def test_bad_inputs_are_named() -> None:
    m = InspectBackbone(BackboneConfig.named("tiny"))
    with pytest.raises(ValueError, match="image must be"):
        m(image=torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="spectrum must be"):
        m(spectrum=torch.zeros(1, 2, 7))
    with pytest.raises(ValueError, match="inputs_embeds"):
        m(image=torch.zeros(1, 3, 128, 128), inputs_embeds=torch.zeros(1, 99, 128))
    with pytest.raises(ValueError, match="at least one"):
        m()
    with pytest.raises(ValueError, match="unknown backbone size"):
        BackboneConfig.named("huge")


def test_bfloat16_autocast_trains() -> None:
    m = InspectBackbone(BackboneConfig.named("tiny")).train()
    batch = _batch(m.config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(**batch, image_present=torch.tensor([True, False]))
    out.cls.float().sum().backward()
    assert torch.isfinite(out.cls.float()).all()
    assert m.layers[1].attn.qkv.weight.grad is not None


def _tiny_and(
    size: str, fit: Callable[..., tuple[dict[str, torch.Tensor], bool]]
) -> tuple[InspectBackbone, InspectBackbone]:
    """A seeded random `tiny`, and a `size` backbone started from its weights by `fit`."""
    torch.manual_seed(0)
    fine = InspectBackbone(BackboneConfig.named("tiny")).eval()
    other = InspectBackbone(BackboneConfig.named(size)).eval()
    state, changed = fit(fine.state_dict(), other)
    assert changed
    other.load_state_dict(state, strict=True)
    return fine, other


def test_an_8px_backbone_starts_a_16px_one_exactly() -> None:
    """`coarsen_patch_state`: each 16 px image token is the mean of the four 8 px tokens it
    covers (stem, position embeddings); the class and spectrum tokens are untouched."""
    fine, coarse = _tiny_and("tiny16", coarsen_patch_state)
    batch = _batch(fine.config)
    with torch.no_grad():
        a, _, (_, n_fine, _) = fine.embed(batch["image"], batch["spectrum"], None, None, None, None)
        b, _, (_, n_coarse, _) = coarse.embed(
            batch["image"], batch["spectrum"], None, None, None, None
        )
    assert (n_fine, n_coarse) == (256, 64)
    dim = fine.config.hidden_size
    grid = a[:, 1 : 1 + n_fine].transpose(1, 2).reshape(2, dim, 16, 16)
    merged = torch.nn.functional.avg_pool2d(grid, 2).flatten(2).transpose(1, 2)
    torch.testing.assert_close(b[:, 1 : 1 + n_coarse], merged, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b[:, 0], a[:, 0])
    torch.testing.assert_close(b[:, 1 + n_coarse :], a[:, 1 + n_fine :])
    # its own grid, another image size or another width come back as they are (the loader
    # then refuses what does not fit)
    assert coarsen_patch_state(coarse.state_dict(), coarse)[1] is False
    for other in (BackboneConfig.named("tiny", image_size=96), BackboneConfig.named("small")):
        state = InspectBackbone(other).state_dict()
        kept, changed = coarsen_patch_state(state, coarse)
        assert not changed and kept.keys() == state.keys()


def test_merged_tokens_start_from_the_unmerged_backbone() -> None:
    """`tinym` from `tiny`'s weights (`merge_state`): up to the merge it is `tiny` exactly
    (the fine patch features), and the image tokens still come out on the stem's 16x16 grid."""
    fine, merged = _tiny_and("tinym", merge_state)
    batch = _batch(fine.config)
    with torch.no_grad():
        a, b = fine(**batch), merged(**batch)
    dim = fine.config.hidden_size
    first = slice(0, dim)  # the patch features of block 1, before the merge
    torch.testing.assert_close(b.patch_features[..., first], a.patch_features[..., first])
    assert b.image_tokens.shape == a.image_tokens.shape == (2, 256, dim)
    assert not torch.allclose(b.cls, a.cls)  # the last blocks see a quarter of the tokens
    # its own state, and a state of another grid, come back as they are
    assert merge_state(merged.state_dict(), merged)[1] is False
    other = InspectBackbone(BackboneConfig.named("tiny16")).state_dict()
    assert merge_state(other, merged)[1] is False


def test_token_merge_takes_2x2_blocks_and_spreads_back() -> None:
    merge = TokenMerge(4, (4, 4))
    x = torch.arange(16.0).reshape(1, 16, 1).expand(1, 16, 4)  # token i holds the value i
    coarse = merge(x)
    assert coarse.shape == (1, 4, 4)
    # the top-left 2x2 block is tokens 0, 1, 4, 5
    assert coarse[0, :, 0].tolist() == [2.5, 4.5, 10.5, 12.5]
    back = merge.spread(coarse)
    assert back[0, [0, 1, 4, 5], 0].tolist() == [2.5] * 4
    assert back[0, [10, 11, 14, 15], 0].tolist() == [12.5] * 4


def test_merge_after_must_leave_blocks_to_merge_into() -> None:
    with pytest.raises(ValueError, match="merge_after"):
        BackboneConfig.named("tiny", merge_after=3)
