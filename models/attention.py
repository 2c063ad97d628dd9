"""RMSNorm and multi-head self-attention with a learned sigmoid gate per head.

The gate is what the seed article called "dynamic attention", done so that it runs: after
`F.scaled_dot_product_attention` each head's output vector (B, H, N, hd) is scaled by a gate
g in (0, 1) of shape (B, H, N, 1). The gate is computed per token and per head from the token
itself and from the mean of the valid tokens (the global context), so a head can switch itself
off for tokens where it does not help. Scaling the head's output, not the (N, N) probabilities,
keeps the softmax a distribution and lets the fused attention kernel run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square layer norm, written out so that ONNX export has no LayerNormalization."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def masked_mean(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean over tokens of x (B, N, D), counting only tokens where valid (B, N) is True."""
    if valid is None:
        return x.mean(dim=1)
    w = valid.to(x.dtype).unsqueeze(-1)  # (B, N, 1)
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)  # (B, D)


def _bias(layer: nn.Linear) -> torch.Tensor:
    """The layer's bias, or zeros where it has none."""
    if layer.bias is None:
        return layer.weight.new_zeros(layer.out_features)
    return layer.bias


class GatedAttention(nn.Module):
    """Self-attention whose heads are each scaled by a sigmoid gate from token and context."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.gate_token = nn.Linear(dim, n_heads)  # from the token itself
        self.gate_context = nn.Linear(dim, n_heads, bias=False)  # from the mean valid token

    def project(
        self, x: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q, k, v side by side (B, N, 3 * H * hd) and the gates (B, N, H), from one GEMM.

        The gate's context term is linear, so the mean of the projected tokens equals the
        projection of the mean token: `gate_context` joins `qkv` and `gate_token` as rows of
        one weight (one matrix product per block instead of three; onnxruntime 2 threads, the
        tiny backbone: 6.45 -> 6.17 ms). Where an adapter wraps a projection (peft's LoRA on
        `qkv`), the three layers run apart, each through its adapter.
        """
        layers = (self.qkv, self.gate_token, self.gate_context)
        if any(type(layer) is not nn.Linear for layer in layers):
            context = self.gate_context(masked_mean(x, valid)).unsqueeze(1)  # (B, 1, H)
            return self.qkv(x), torch.sigmoid(self.gate_token(x) + context)
        H = self.n_heads
        weight = torch.cat([self.qkv.weight, self.gate_token.weight, self.gate_context.weight])
        bias = torch.cat([_bias(self.qkv), _bias(self.gate_token), weight.new_zeros(H)])
        y = F.linear(x, weight, bias)  # (B, N, 3*H*hd + 2H)
        qkv, token, context = y.split([y.shape[-1] - 2 * H, H, H], dim=-1)
        gates = torch.sigmoid(token + masked_mean(context, valid).unsqueeze(1))  # (B, N, H)
        return qkv, gates

    def head_gates(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Gate values in (0, 1), one per token and head: (B, H, N, 1)."""
        return self.project(x, valid)[1].transpose(1, 2).unsqueeze(-1)

    def head_outputs(
        self,
        x: torch.Tensor,
        valid: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Each head's gated output before the output projection: (B, H, N, hd).

        x (B, N, D); valid (B, N) bool marks tokens that may be attended to (keys) and that make
        the gates' context. `attn_mask` (B, 1, N, N) bool, when given, replaces the key mask
        (query i may attend to key j where True): read-out prompts use it (models/backbone.py).
        """
        B, N, _ = x.shape
        qkv, gates = self.project(x, valid)
        qkv = qkv.view(B, N, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, H, N, hd)
        mask = attn_mask
        if mask is None and valid is not None:
            mask = valid[:, None, None, :]  # (B, 1, 1, N) keys
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, hd)
        return out * gates.transpose(1, 2).unsqueeze(-1)  # (B, H, N, hd) * (B, H, N, 1)

    def forward(
        self,
        x: torch.Tensor,
        valid: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, N, D): the gated heads projected back; arguments as in `head_outputs`."""
        B, N, _ = x.shape
        inner = self.n_heads * self.head_dim  # D, or less once heads are pruned (models/prune.py)
        out = self.head_outputs(x, valid, attn_mask)  # (B, H, N, hd)
        out = out.transpose(1, 2).reshape(B, N, inner)  # (B, N, H*hd)
        return self.proj(out)
