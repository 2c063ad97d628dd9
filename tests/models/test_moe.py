"""DeepSeekMoE: sigmoid top-k routing, sparse == static, aux-loss-free balancing by bias."""

from __future__ import annotations

import pytest
import torch

from models.config import SIZES, BackboneConfig
from models.moe import MoE


def test_gate_weights_normalized_and_bias_only_selects() -> None:
    torch.manual_seed(0)
    moe = MoE(16, 8, n_routed=8, topk=2)
    x = torch.randn(20, 16)
    w, idx = moe.gate(x)
    assert idx.shape == (20, 2)
    torch.testing.assert_close(w.sum(-1), torch.ones(20))
    # a huge bias on expert 5 makes it chosen everywhere, but its weight is still its affinity
    moe.gate.routing_bias[5] = 100.0
    w2, idx2 = moe.gate(x)
    assert bool((idx2 == 5).any(dim=1).all())
    scores = torch.sigmoid(x @ moe.gate.weight.T)
    chosen = scores.gather(1, idx2)
    torch.testing.assert_close(w2, chosen / chosen.sum(-1, keepdim=True))


def test_sparse_equals_static() -> None:
    torch.manual_seed(0)
    moe = MoE(32, 24, n_routed=8, topk=3).eval()
    x = torch.randn(2, 50, 32)
    sparse = moe(x)
    moe.static = True
    static = moe(x)
    torch.testing.assert_close(sparse, static, atol=1e-5, rtol=0)


def test_static_form_has_no_data_dependent_ops() -> None:
    """The static form's cost does not depend on the routing: same FLOPs whatever the bias."""
    from torch.utils.flop_counter import FlopCounterMode

    moe = MoE(8, 4, n_routed=4, topk=1, static=True).eval()
    x = torch.randn(1, 10, 8)
    counts = []
    for bias in (torch.tensor([9.0, 0, 0, 0]), torch.zeros(4)):
        moe.gate.routing_bias.copy_(bias)
        with FlopCounterMode(display=False) as counter:
            moe(x)
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1]


def test_experts_are_distinct_functions() -> None:
    """Routing to another expert changes the output (the experts are not ignored)."""
    torch.manual_seed(0)
    moe = MoE(16, 8, n_routed=4, topk=1).eval()
    x = torch.randn(1, 4, 16)
    a = moe(x)
    moe.gate.routing_bias[:] = torch.tensor([100.0, 0, 0, 0])
    b = moe(x)
    moe.gate.routing_bias[:] = torch.tensor([0, 100.0, 0, 0])
    c = moe(x)
    assert not torch.allclose(b, c)
    assert a.shape == x.shape


@pytest.mark.slow
@pytest.mark.parametrize("size", ["unit", *sorted(SIZES)])
def test_routing_bias_balances_load_during_training(size: str) -> None:
    """A skewed router plus a short training run: over the run's last 100 batches the busiest
    expert got within 2x the tokens of the idlest; on a small MoE (and on a fixed probe after
    the run) and on the MoE of every named backbone size (its width, experts and top-k). At
    those widths the bias keeps stepping around the balance, so one batch's load can read a
    little over 2x; the load the training saw is the measure. Without bias updates all fail."""
    torch.manual_seed(0)
    if size == "unit":
        dim, inter, n_exp, topk = 16, 8, 8, 2
    else:
        cfg = BackboneConfig.named(size)
        dim, inter = cfg.hidden_size, cfg.moe_intermediate_size
        n_exp, topk = cfg.n_routed_experts, cfg.n_activated_experts
    moe = MoE(dim, inter, n_routed=n_exp, topk=topk).train()
    with torch.no_grad():
        moe.gate.weight[0] += 2.0  # expert 0 attracts almost every token at the start
    opt = torch.optim.Adam(moe.parameters(), lr=1e-3)
    target = torch.nn.Linear(dim, dim)

    def load_of(x: torch.Tensor) -> torch.Tensor:
        _, idx = moe.gate(x)
        return torch.bincount(idx.flatten(), minlength=n_exp).float()

    probe = torch.randn(2000, dim).abs()
    moe.gate.expert_load.zero_()
    start = load_of(probe)
    moe.gate.expert_load.zero_()
    assert start.max() > 2 * start.min()
    seen = torch.zeros(n_exp)  # the load over the run's last 100 batches
    for step in range(300):
        x = torch.randn(32, dim).abs()
        loss = (moe(x.unsqueeze(0)).squeeze(0) - target(x).detach()).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 200:
            seen += moe.gate.expert_load
        moe.gate.update_bias(0.01)
    assert seen.max() <= 2 * seen.min(), seen.tolist()
    if size == "unit":  # the fixed probe, after the run, too
        moe.eval()
        end = load_of(probe)
        assert end.max() <= 2 * end.min(), end.tolist()
