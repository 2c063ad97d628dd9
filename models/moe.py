"""DeepSeekMoE feed-forward: fine-grained routed experts, top-k, one shared expert.

Routing follows DeepSeek-V3: the affinity of a token to expert i is sigmoid(x · e_i); a per-expert
routing bias is added to the affinities *only to choose* the top-k experts; the chosen experts'
affinities (without the bias) are normalized to sum to one and weight their outputs. The bias
balances the load without an auxiliary loss: during training the gate counts how many tokens
each expert got, and `Gate.update_bias()` nudges an overloaded expert's bias down and an idle
one's up by a fixed step.

Two forms compute the same function:
- sparse (training): each expert runs only on the tokens routed to it;
- static (export): every expert runs on every token (two GEMMs over the experts' weights laid
  side by side) and the top-k choice is a dense (T, E) combine matrix built with comparisons,
  so the graph has a constant top-k and no data-dependent shapes. It reads the experts'
  weights directly: merge any adapter on the experts before switching to it.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """SwiGLU feed-forward: the dense first block, each routed expert and the shared expert."""

    def __init__(self, dim: int, inter_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, inter_dim, bias=False)
        self.w2 = nn.Linear(inter_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, inter_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Gate(nn.Module):
    """Top-k routing with sigmoid affinities and a load-balancing bias used for selection only."""

    def __init__(self, dim: int, n_experts: int, topk: int, route_scale: float = 1.0) -> None:
        super().__init__()
        self.topk = topk
        self.route_scale = route_scale
        self.weight = nn.Parameter(torch.empty(n_experts, dim))
        nn.init.normal_(self.weight, std=dim**-0.5)
        self.register_buffer("routing_bias", torch.zeros(n_experts))  # saved with the weights
        self.register_buffer("expert_load", torch.zeros(n_experts), persistent=False)
        self.routing_bias: torch.Tensor
        self.expert_load: torch.Tensor

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (T, D) -> weights (T, k) summing to route_scale, expert indices (T, k)."""
        scores = torch.sigmoid(F.linear(x.float(), self.weight.float()))  # (T, E)
        indices = torch.topk(scores + self.routing_bias, self.topk, dim=-1).indices  # (T, k)
        weights = scores.gather(1, indices)  # (T, k), the bias does not weight
        weights = weights / weights.sum(dim=-1, keepdim=True) * self.route_scale
        if self.training:
            self._count_load(indices, valid)
        return weights.to(x.dtype), indices

    @torch.no_grad()
    def _count_load(self, indices: torch.Tensor, valid: torch.Tensor | None) -> None:
        chosen = F.one_hot(indices, self.weight.shape[0]).sum(dim=1).float()  # (T, E)
        if valid is not None:
            chosen = chosen * valid.unsqueeze(-1).float()
        self.expert_load += chosen.sum(dim=0)

    @torch.no_grad()
    def update_bias(self, rate: float) -> None:
        """Move each expert's routing bias by `rate` toward the mean load, then reset the counts.

        Call after each optimizer step (under DDP, all-reduce `expert_load` first).
        """
        load = self.expert_load
        if load.sum() > 0:
            self.routing_bias += rate * torch.sign(load.mean() - load)
        load.zero_()


class MoE(nn.Module):
    """Routed experts plus one always-on shared expert; sparse or static form."""

    def __init__(
        self,
        dim: int,
        inter_dim: int,
        n_routed: int,
        topk: int,
        n_shared: int = 1,
        route_scale: float = 1.0,
        static: bool = False,
    ) -> None:
        super().__init__()
        self.static = static
        self.gate = Gate(dim, n_routed, topk, route_scale)
        self.experts = nn.ModuleList(MLP(dim, inter_dim) for _ in range(n_routed))
        self.shared_experts = MLP(dim, n_shared * inter_dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D); valid (B, N) marks real tokens (only they count toward the load)."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # (T, D)
        flat_valid = None if valid is None else valid.reshape(-1)  # (T,)
        weights, indices = self.gate(x, flat_valid)  # (T, k), (T, k)
        if self.static:
            return self._static(x, weights, indices).view(shape)
        return (self._sparse(x, weights, indices) + self.shared_experts(x)).view(shape)

    def _sparse(
        self, x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        y = torch.zeros_like(x)
        counts = torch.bincount(indices.flatten(), minlength=len(self.experts)).tolist()
        for i, expert in enumerate(self.experts):
            if counts[i] == 0:
                continue
            idx, slot = torch.where(indices == i)  # tokens routed to expert i, and their k-slot
            y = y.index_add(0, idx, expert(x[idx]) * weights[idx, slot, None])
        return y

    def _static(
        self, x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        """The routed experts and the shared one, as three GEMMs over all their weights.

        The shared expert joins the routed ones as one more hidden block with weight 1 (in
        the sparse form it is added), and the gate and up projections are two GEMMs rather
        than one split in the middle: fewer and larger operations (onnxruntime, the tiny
        backbone per part: 10.14 -> 9.56 ms on one thread, 6.49 -> 6.19 ms on two).
        """
        experts = cast(list[MLP], list(self.experts))
        T, E, H = x.shape[0], len(experts), experts[0].w1.out_features
        S = self.shared_experts.w1.out_features // H  # the shared expert: S blocks of H units
        expert_ids = torch.arange(E, device=x.device)  # (E,)
        chosen = indices.unsqueeze(-1) == expert_ids  # (T, k, E)
        combine = (chosen.to(x.dtype) * weights.unsqueeze(-1)).sum(dim=1)  # (T, E)
        combine = torch.cat([combine, combine.new_ones(T, S)], dim=1)  # (T, E + S)
        blocks = [*experts, self.shared_experts]
        w1 = torch.cat([b.w1.weight for b in blocks])  # ((E + S) * H, D)
        w3 = torch.cat([b.w3.weight for b in blocks])
        w2 = torch.cat([b.w2.weight for b in blocks], dim=1)  # (D, (E + S) * H)
        h = (F.silu(F.linear(x, w1)) * F.linear(x, w3)).view(T, E + S, H)  # (T, E + S, H)
        return F.linear((h * combine.unsqueeze(-1)).view(T, (E + S) * H), w2)  # (T, D)
