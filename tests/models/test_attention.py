"""Gated attention: a gate in (0, 1) per token and head that scales that head's output."""

from __future__ import annotations

import torch

from models.attention import GatedAttention, RMSNorm


def test_gate_is_in_open_unit_interval_per_head() -> None:
    torch.manual_seed(0)
    attn = GatedAttention(32, 4)
    x = torch.randn(3, 10, 32) * 5
    g = attn.head_gates(x)
    assert g.shape == (3, 4, 10, 1)
    assert bool((g > 0).all() and (g < 1).all())


def test_gate_scales_each_head_output() -> None:
    """Closing one head's gate removes exactly that head's contribution."""
    torch.manual_seed(0)
    attn = GatedAttention(32, 4)
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        attn.gate_token.weight.zero_()
        attn.gate_context.weight.zero_()
        attn.gate_token.bias.copy_(torch.tensor([30.0, 30.0, 30.0, -30.0]))  # head 3 shut
        out = attn(x)
        # the same attention with head 3's output projection columns removed, gates open
        ref = GatedAttention(32, 4)
        ref.load_state_dict(attn.state_dict())
        ref.gate_token.bias.fill_(30.0)
        ref.proj.weight[:, 24:] = 0.0
        expected = ref(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_gate_uses_global_context() -> None:
    torch.manual_seed(0)
    attn = GatedAttention(16, 2)
    x = torch.randn(1, 5, 16)
    y = x.clone()
    y[:, 1:] = torch.randn(1, 4, 16)  # token 0 unchanged, its context changed
    assert not torch.allclose(attn.head_gates(x)[:, :, 0], attn.head_gates(y)[:, :, 0])


def test_one_gemm_equals_the_separate_projections() -> None:
    """q, k, v and the gate come from one matrix product; the same as the three layers apart,
    with and without masked tokens (the context is the mean of the valid tokens only)."""
    torch.manual_seed(0)
    attn = GatedAttention(32, 4)
    x = torch.randn(2, 7, 32)
    valid = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    for v in (None, valid):
        qkv, gates = attn.project(x, v)
        torch.testing.assert_close(qkv, attn.qkv(x))
        w = torch.ones(2, 7, 1) if v is None else v.float().unsqueeze(-1)
        context = (x * w).sum(1) / w.sum(1)
        expected = torch.sigmoid(attn.gate_token(x) + attn.gate_context(context).unsqueeze(1))
        torch.testing.assert_close(gates, expected, atol=1e-6, rtol=1e-5)


def test_invalid_keys_are_ignored() -> None:
    torch.manual_seed(0)
    attn = GatedAttention(16, 2)
    x = torch.randn(1, 5, 16)
    valid = torch.tensor([[True, True, True, False, False]])
    a = attn(x, valid)[:, :3]
    y = x.clone()
    y[:, 3:] = 100.0
    b = attn(y, valid)[:, :3]
    torch.testing.assert_close(a, b)


def test_rmsnorm_unit_rms() -> None:
    x = torch.randn(4, 8) * 10
    y = RMSNorm(8)(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(4), atol=1e-3, rtol=1e-3)
