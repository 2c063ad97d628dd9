"""The good-part memory: coreset, nearest distances, standardized scores, odd patches found."""

from __future__ import annotations

import torch

from models.anomaly import MemoryConfig, PatchMemory, greedy_coreset, nearest_distance


def test_nearest_distance_matches_cdist() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 5, 8, generator=g)
    bank = torch.randn(20, 8, generator=g)
    expect = torch.cdist(q.reshape(-1, 8), bank).min(-1).values.reshape(3, 5)
    torch.testing.assert_close(nearest_distance(q, bank), expect, atol=1e-4, rtol=1e-4)


def test_coreset_keeps_a_rare_outlier() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 16, generator=g) * 0.01
    x[123] += 10.0
    idx = greedy_coreset(x, 10, projection=8, seed=1)
    assert idx.unique().numel() == 10
    assert 123 in idx.tolist()


def test_memory_scores_an_odd_patch_high_and_points_at_it() -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 32, generator=g)
    # good parts: 16 patches each drawn from 4 prototypes, plus a little noise
    good = base[torch.randint(4, (20, 16), generator=g)] + 0.05 * torch.randn(
        20, 16, 32, generator=g
    )
    memory = PatchMemory(32, MemoryConfig(max_entries=64, top_k_patches=1))
    memory.fit(good, seed=0)
    assert memory.bank.shape == (64, 32)
    test_good = base[torch.randint(4, (1, 16), generator=g)] + 0.05 * torch.randn(
        1, 16, 32, generator=g
    )
    test_bad = test_good.clone()
    test_bad[0, 7] = torch.randn(32, generator=g)  # a patch unlike any good one
    s_good = memory(test_good)
    s_bad = memory(test_bad)
    assert float(s_bad.score[0]) > float(s_good.score[0]) + 3.0
    assert int(s_bad.patch_scores[0].argmax()) == 7
    assert abs(float(s_good.score[0])) < 3.0  # a good part sits within the good parts' spread


def test_state_dict_round_trip() -> None:
    good = torch.randn(5, 4, 8)
    m = PatchMemory(8, MemoryConfig(max_entries=10))
    m.fit(good)
    m2 = PatchMemory(8, MemoryConfig(max_entries=10), entries=m.bank.shape[0])
    m2.load_state_dict(m.state_dict())
    q = torch.randn(2, 4, 8)
    torch.testing.assert_close(m(q).score, m2(q).score)


def test_position_weight_compares_a_token_with_good_tokens_at_its_place() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, generator=g), torch.randn(8, generator=g)
    good = torch.stack([a, b, a]).unsqueeze(0).repeat(6, 1, 1)  # (6, 3, 8): a b a
    good = good + 0.01 * torch.randn(6, 3, 8, generator=g)
    swapped = torch.stack([b, a, b]).unsqueeze(0)  # the same tokens, in the wrong places
    anywhere = PatchMemory(8, MemoryConfig(top_k_patches=1))
    anywhere.fit(good)
    in_place = PatchMemory(8, MemoryConfig(top_k_patches=1, position_weight=10.0))
    in_place.fit(good)
    assert float(anywhere.raw(swapped).score[0]) < 0.1
    assert float(in_place.raw(swapped).score[0]) > 1.0
