"""Structured pruning of a line model's backbone: whole routed experts and whole attention heads.

Pruning removes weights, so the exported graph is smaller and cheaper (not just sparser):
- a pruned routed expert leaves its MoE block: its gate row, routing bias and weights go, so
  top-k picks among the remaining experts only (top-k stays the same constant for export);
- a pruned attention head leaves its block: its q/k/v rows, its gate rows and its columns of
  the output projection go; the block becomes a `PrunedGatedAttention` (same function over the
  heads that stay, each with the same head width and scale).

Importance comes from sample parts (`measure_importance`):
- expert: the routing weight it receives, summed over the valid tokens of the parts (routed
  load x mean gate weight);
- head: the mean norm of the head's contribution to the block output (its gate value times its
  attention output, through its columns of the output projection), over valid tokens.
`prune_line_model` measures, then removes the `experts_per_block` least important experts of
every MoE block and the `heads_per_block` least important heads of every block. Pruning is an
export-time transform: it changes the backbone in place (pass a copy to keep the original).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from models.attention import GatedAttention
from models.backbone import InspectBackbone
from models.moe import MoE


@dataclass(frozen=True)
class PruneConfig:
    """How much to remove: routed experts per MoE block, attention heads per block."""

    experts_per_block: int = 0
    heads_per_block: int = 0


@dataclass
class Importance:
    """Per block (layer index): one importance per routed expert, one per attention head."""

    experts: dict[int, torch.Tensor] = field(default_factory=dict)
    heads: dict[int, torch.Tensor] = field(default_factory=dict)


@dataclass
class PruneReport:
    """What was removed, by layer index, in the original numbering; and the importances used."""

    experts: dict[int, list[int]]
    heads: dict[int, list[int]]
    importance: Importance


class PrunedGatedAttention(GatedAttention):
    """`GatedAttention` over the heads that survived pruning (inner width heads x head_dim)."""

    def __init__(self, source: GatedAttention, keep: Sequence[int]) -> None:
        nn.Module.__init__(self)
        dim = source.proj.out_features
        hd = source.head_dim
        self.n_heads = len(keep)
        self.head_dim = hd
        inner = self.n_heads * hd
        cols = torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in keep])  # (inner,)
        D = source.n_heads * hd
        rows = torch.cat([cols, cols + D, cols + 2 * D])  # q, k, v rows of the kept heads
        keep_t = torch.as_tensor(list(keep))
        with torch.no_grad():
            self.qkv = _linear(source.qkv.weight[rows], _bias(source.qkv, rows), dim, 3 * inner)
            self.proj = _linear(source.proj.weight[:, cols], source.proj.bias, inner, dim)
            self.gate_token = _linear(
                source.gate_token.weight[keep_t], _bias(source.gate_token, keep_t), dim, len(keep)
            )
            self.gate_context = _linear(source.gate_context.weight[keep_t], None, dim, len(keep))


def _attention(block: nn.Module) -> GatedAttention:
    attn = block.attn
    if not isinstance(attn, GatedAttention):
        msg = f"block has no GatedAttention to prune (found {type(attn).__name__})"
        raise TypeError(msg)
    return attn


def _bias(layer: nn.Linear, index: torch.Tensor) -> torch.Tensor | None:
    return None if layer.bias is None else layer.bias[index]


def _linear(weight: torch.Tensor, bias: torch.Tensor | None, n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out, bias=bias is not None)
    layer.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return layer


# --- importance ----------------------------------------------------------------------------


def _valid_mask(valid: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """(B, N) float weights of the tokens that count (all ones when valid is None)."""
    if valid is None:
        return like.new_ones(like.shape[0], like.shape[1])
    return valid.to(like.dtype)


def _head_contribution(
    attn: GatedAttention,
    x: torch.Tensor,
    valid: torch.Tensor | None,
    attn_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per head, the summed norm over valid tokens of its gated output after projection: (H,)."""
    out = attn.head_outputs(x, valid, attn_mask)  # (B, H, N, hd)
    w = attn.proj.weight.view(attn.proj.out_features, attn.n_heads, attn.head_dim)  # (Dout, H, hd)
    contrib = torch.einsum("bhnd,ohd->bhno", out, w).norm(dim=-1)  # (B, H, N)
    return (contrib * _valid_mask(valid, x).unsqueeze(1)).sum(dim=(0, 2))


@torch.no_grad()
def measure_importance(
    model: nn.Module,
    backbone: InspectBackbone,
    batches: Iterable[Mapping[str, torch.Tensor | None]],
) -> Importance:
    """Run `model(**batch)` over sample parts and total each expert's and head's importance.

    `backbone` is the backbone inside `model` whose blocks are measured (a `LineModel` runs it
    twice per part, prompt-free and with prompts; both passes count).
    """
    imp = Importance()
    token_counts: dict[int, float] = {}
    hooks = []
    for i, block in enumerate(backbone.layers):
        attn = _attention(block)
        imp.heads[i] = torch.zeros(attn.n_heads)

        def on_attn(module: nn.Module, args: tuple, i: int = i) -> None:
            x = args[0]
            valid = args[1] if len(args) > 1 else None
            attn_mask = args[2] if len(args) > 2 else None
            contribution = _head_contribution(module, x, valid, attn_mask)  # type: ignore[arg-type]
            imp.heads[i] += contribution.float()
            token_counts[i] = token_counts.get(i, 0.0) + float(_valid_mask(valid, x).sum())

        hooks.append(attn.register_forward_pre_hook(on_attn))
        if isinstance(block.ffn, MoE):
            gate = block.ffn.gate
            imp.experts[i] = torch.zeros(gate.weight.shape[0])

            def on_gate(module: nn.Module, args: tuple, output: tuple, i: int = i) -> None:
                weights, indices = output
                valid = args[1] if len(args) > 1 else None
                w = weights.float()
                if valid is not None:
                    w = w * valid.float().unsqueeze(-1)
                imp.experts[i].index_add_(0, indices.flatten(), w.flatten())

            hooks.append(gate.register_forward_hook(on_gate))
    try:
        model.eval()
        for batch in batches:
            model(**batch)
    finally:
        for h in hooks:
            h.remove()
    for i, n in token_counts.items():
        imp.heads[i] /= max(n, 1.0)
        if i in imp.experts:
            imp.experts[i] /= max(n, 1.0)
    return imp


# --- removal -------------------------------------------------------------------------------


@torch.no_grad()
def remove_experts(moe: MoE, pruned: Sequence[int]) -> None:
    """Take routed experts `pruned` out of `moe`: they are never routed to again."""
    n = len(moe.experts)
    bad = [e for e in pruned if not 0 <= e < n]
    if bad:
        msg = f"expert indices {bad} out of range for a block of {n} routed experts"
        raise ValueError(msg)
    keep = [e for e in range(n) if e not in set(pruned)]
    if len(keep) < moe.gate.topk:
        msg = (
            f"pruning {len(set(pruned))} of {n} experts leaves {len(keep)}, fewer than the "
            f"{moe.gate.topk} each token is routed to (top-k)"
        )
        raise ValueError(msg)
    if len(keep) == n:
        return
    idx = torch.as_tensor(keep)
    gate = moe.gate
    gate.weight = nn.Parameter(gate.weight[idx].clone(), requires_grad=gate.weight.requires_grad)
    gate.routing_bias = gate.routing_bias[idx].clone()
    gate.expert_load = gate.expert_load[idx].clone()
    moe.experts = nn.ModuleList(moe.experts[e] for e in keep)


def remove_heads(block: nn.Module, pruned: Sequence[int]) -> None:
    """Replace `block.attn` by a `PrunedGatedAttention` without heads `pruned`."""
    attn = _attention(block)
    n = attn.n_heads
    bad = [h for h in pruned if not 0 <= h < n]
    if bad:
        msg = f"head indices {bad} out of range for a block of {n} heads"
        raise ValueError(msg)
    keep = [h for h in range(n) if h not in set(pruned)]
    if not keep:
        msg = f"pruning all {n} heads of a block would remove its attention; keep at least one"
        raise ValueError(msg)
    if len(keep) < n:
        block.attn = PrunedGatedAttention(attn, keep)


def _least(scores: torch.Tensor, k: int) -> list[int]:
    return sorted(int(i) for i in torch.argsort(scores)[:k]) if k > 0 else []


def prune_backbone(
    backbone: InspectBackbone, config: PruneConfig, importance: Importance
) -> PruneReport:
    """Remove the least important experts and heads of every block, in place."""
    if config.experts_per_block < 0 or config.heads_per_block < 0:
        msg = f"prune counts must be >= 0, got {config}"
        raise ValueError(msg)
    experts: dict[int, list[int]] = {}
    heads: dict[int, list[int]] = {}
    for i, block in enumerate(backbone.layers):
        if isinstance(block.ffn, MoE) and config.experts_per_block:
            experts[i] = _least(importance.experts[i], config.experts_per_block)
            remove_experts(block.ffn, experts[i])
        if config.heads_per_block:
            heads[i] = _least(importance.heads[i], config.heads_per_block)
            remove_heads(block, heads[i])
    return PruneReport(experts=experts, heads=heads, importance=importance)


def prune_line_model(
    model: nn.Module,
    batches: Sequence[Mapping[str, torch.Tensor | None]],
    config: PruneConfig,
) -> PruneReport:
    """Measure importance on `batches` (ModelInputs.as_kwargs()) and prune `model.backbone`.

    For a LoRA line (`model.tuned`, a second backbone) the tuned copy is pruned the same way.
    """
    backbone: InspectBackbone = model.backbone  # type: ignore[assignment]
    if not batches and (config.experts_per_block or config.heads_per_block):
        msg = "pruning needs sample parts to measure importance on; got no batches"
        raise ValueError(msg)
    importance = measure_importance(model, backbone, batches)
    report = prune_backbone(backbone, config, importance)
    tuned = getattr(model, "tuned", None)
    if isinstance(tuned, InspectBackbone):
        for i, ids in report.experts.items():
            remove_experts(tuned.layers[i].ffn, ids)  # type: ignore[arg-type]
        for i, ids in report.heads.items():
            remove_heads(tuned.layers[i], ids)
    return report


# --- narrower experts (a new pretraining run started from wider ones) ------------------------


def _expert_prefixes(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Every SwiGLU expert in a backbone state dict: "...experts.3." and "...shared_experts."."""
    return sorted(
        k[: -len("w1.weight")]
        for k in state
        if k.endswith("w1.weight") and ("experts." in k or "shared_experts." in k)
    )


def narrow_expert_state(
    state: Mapping[str, torch.Tensor], inter_dim: int
) -> tuple[dict[str, torch.Tensor], int]:
    """A copy of a backbone state dict whose routed experts have `inter_dim` hidden units each.

    Each expert (and the shared expert, `n_shared x inter_dim` wide) keeps its hidden units of
    largest weight product |w1_j| |w3_j| |w2_j| (SwiGLU: unit j adds w2[:, j] silu(w1_j x)(w3_j x)),
    in their original order. This is a starting point for pretraining, not a finished model:
    the narrowed backbone computes a different function until it is trained again. Returns the
    new state and the original width; a state whose experts are already `inter_dim` wide comes
    back unchanged, a narrower one is a ValueError.
    """
    out = dict(state)
    prefixes = _expert_prefixes(state)
    routed = [p for p in prefixes if "shared_experts." not in p]
    if not routed:
        msg = "the weights have no routed experts to narrow"
        raise ValueError(msg)
    width = state[routed[0] + "w1.weight"].shape[0]
    if inter_dim > width:
        msg = f"cannot widen experts from {width} to {inter_dim} hidden units"
        raise ValueError(msg)
    for prefix in prefixes:
        w1, w2, w3 = (state[prefix + f"w{i}.weight"] for i in (1, 2, 3))
        n_blocks = w1.shape[0] // width  # 1 for a routed expert, n_shared for the shared one
        score = w1.norm(dim=1) * w3.norm(dim=1) * w2.norm(dim=0)  # (n_blocks * width,)
        keep = score.topk(n_blocks * inter_dim).indices.sort().values
        out[prefix + "w1.weight"] = w1[keep].clone()
        out[prefix + "w3.weight"] = w3[keep].clone()
        out[prefix + "w2.weight"] = w2[:, keep].clone()
    return out, width
