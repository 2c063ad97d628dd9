"""DESIGN §5 metrics: rates, AUROC, unseen classes, faults, threshold rule."""

from __future__ import annotations

import numpy as np
import pytest

from inspect_app.metrics import (
    UNNAMEABLE,
    PartResult,
    auroc,
    compare_versions,
    compute_metrics,
    miss_tradeoff,
    parts_to_show_rate,
    pixel_auroc,
    rate_upper_bound,
    threshold_allowing,
    threshold_for_false_reject_rate,
    threshold_for_miss_rate,
)


def test_auroc_matches_pairwise_count_with_ties() -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, size=40).astype(float)
    y = rng.random(40) < 0.4
    pos, neg = s[y], s[~y]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert auroc(s, y) == pytest.approx(pairs / (pos.size * neg.size))


def test_auroc_is_none_with_one_side_only() -> None:
    assert auroc([0.1, 0.2], [True, True]) is None


def _part(label: str, score: float | None, cls: str | None = None, **kw: object) -> PartResult:
    return PartResult(
        part_id=f"{label}-{score}", label=label, defect_score=score, predicted_class=cls, **kw
    )  # type: ignore[arg-type]


def test_rates_classes_and_unseen_class() -> None:
    parts = [
        _part("ok", 0.1),
        _part("ok", 0.6),  # false reject
        _part("scratch", 0.9, "scratch"),  # caught, named right
        _part("scratch", 0.8, "dent"),  # caught, named wrong
        _part("dent", 0.2, "dent"),  # missed
        _part("crack", 0.95, "scratch"),  # unseen class, caught
    ]
    r = compute_metrics(parts, threshold=0.5, taught_classes=["dent", "scratch"]).as_dict()
    assert r["n"] == 6 and r["n_defective"] == 4
    assert r["miss_rate"] == pytest.approx(1 / 4)
    assert r["false_reject_rate"] == pytest.approx(1 / 2)
    assert r["accuracy"] == pytest.approx(4 / 6)
    # among caught defective parts of taught classes (2 scratches): one named right
    assert r["class_accuracy"] == pytest.approx(1 / 2)
    assert r["per_class"]["crack"]["note"] == UNNAMEABLE
    assert r["per_class"]["crack"]["recall"] == 1.0
    assert r["per_class"]["dent"]["recall"] == 0.0
    assert r["per_class"]["ok"]["recall"] == pytest.approx(0.5)
    assert r["threshold"] == 0.5
    assert "pixel_auroc" not in r


def test_faults_count_as_fail_and_are_listed() -> None:
    parts = [
        _part("ok", None, fault="a.png, row 2: unreadable image"),
        _part("dent", None, fault="b.png, row 3: unreadable image"),
        _part("ok", 0.1),
        _part("dent", 0.9, "dent"),
    ]
    r = compute_metrics(parts, threshold=0.5, taught_classes=["dent"]).as_dict()
    assert r["n_fault"] == 2
    assert r["miss_rate"] == 0.0  # a faulted defective part is failed, not missed
    assert r["false_reject_rate"] == pytest.approx(0.5)  # a faulted good part is rejected
    assert [f["part_id"] for f in r["faults"]] == ["ok-None", "dent-None"]
    assert r["auroc"] == 1.0  # over inspected parts


def test_rate_upper_bounds_say_how_little_few_parts_prove() -> None:
    """0 misses in 25 defective parts only bounds the miss rate at 11.3 % (95 %, exact); the
    bound is what a binomial with that rate would beat 5 % of the time."""
    from scipy.stats import binom

    assert rate_upper_bound(0, 25) == pytest.approx(1 - 0.05 ** (1 / 25))
    for k, n in ((0, 25), (1, 25), (3, 50), (2, 300)):
        upper = rate_upper_bound(k, n)
        assert upper is not None and k / n < upper < 1
        assert binom.cdf(k, n, upper) == pytest.approx(0.05, abs=1e-6)
    assert rate_upper_bound(0, 3000) == pytest.approx(0.001, rel=0.01)  # about 3 / n
    assert rate_upper_bound(4, 4) == 1.0 and rate_upper_bound(0, 0) is None
    n = parts_to_show_rate(0.005)  # the smallest count whose zero-event bound meets the rate
    assert n == 598 and rate_upper_bound(0, n) <= 0.005 < rate_upper_bound(0, n - 1)
    parts = [_part("ok", 0.1)] * 9 + [_part("ok", 0.9)] + [_part("dent", 0.9, "dent")] * 4
    r = compute_metrics(parts, threshold=0.5, taught_classes=["dent"]).as_dict()
    assert r["miss_rate"] == 0.0 and r["miss_rate_upper_95"] == pytest.approx(
        rate_upper_bound(0, 4)
    )
    assert r["false_reject_rate_upper_95"] == pytest.approx(rate_upper_bound(1, 10))


def test_no_good_parts_reports_classification_only() -> None:
    parts = [_part("dent", 0.9, "dent"), _part("scratch", 0.9, "dent")]
    r = compute_metrics(parts, threshold=0.5, taught_classes=["dent", "scratch"]).as_dict()
    assert r["false_reject_rate"] is None and r["auroc"] is None
    assert r["false_reject_rate_upper_95"] is None
    assert r["class_accuracy"] == 0.5


def test_pixel_auroc_from_heatmap_and_mask() -> None:
    mask = np.zeros((32, 32), dtype=bool)
    mask[8:16, 8:16] = True
    hot = np.zeros((8, 8), dtype=np.float32)
    hot[2:4, 2:4] = 1.0
    good = PartResult("g", "ok", 0.1, heatmap=np.zeros((8, 8), np.float32))
    bad = PartResult("b", "dent", 0.9, "dent", heatmap=hot, mask=mask)
    assert pixel_auroc([good, bad]) == pytest.approx(1.0, abs=0.02)
    wrong = PartResult("w", "dent", 0.9, "dent", heatmap=1.0 - hot, mask=mask)
    assert pixel_auroc([wrong]) < 0.1


@pytest.mark.parametrize("target", [0.0, 0.005])
def test_threshold_catches_every_defect_when_no_miss_is_allowed(target: float) -> None:
    d = [0.6, 0.7, 0.9]
    g = [0.1, 0.2, 0.65]
    t = threshold_for_miss_rate(d, g, target)
    assert all(x >= t for x in d)
    assert t == pytest.approx((0.6 + 0.2) / 2)


def test_threshold_allows_misses_at_a_looser_target() -> None:
    d = np.linspace(0.5, 1.0, 10)
    t = threshold_for_miss_rate(d, [0.0], 0.1)  # one of ten may be missed
    assert (d < t).sum() == 1


def test_threshold_rejects_bad_target() -> None:
    with pytest.raises(ValueError, match="target miss rate"):
        threshold_for_miss_rate([0.5], [0.1], 1.5)


@pytest.mark.parametrize(("target", "rejected"), [(0.0, 0), (0.05, 2), (0.1, 5), (0.99, 49)])
def test_good_only_threshold_rejects_the_target_share_of_good_parts(
    target: float, rejected: int
) -> None:
    g = np.random.default_rng(1).normal(0, 1, 50)
    t = threshold_for_false_reject_rate(g, target)
    assert (g >= t).sum() == rejected
    top = np.sort(g)[::-1]
    if rejected:  # halfway between the last good part rejected and the first passed
        assert t == pytest.approx((top[rejected - 1] + top[rejected]) / 2)
    else:
        assert t > top[0] and t == pytest.approx(top[0])


def test_good_only_threshold_refuses_a_bad_target_and_no_parts() -> None:
    with pytest.raises(ValueError, match="target false-reject rate"):
        threshold_for_false_reject_rate([0.1, 0.2], 1.0)
    with pytest.raises(ValueError, match="without any scored good part"):
        threshold_for_false_reject_rate([], 0.05)


def test_threshold_allowing_is_the_target_rule_counted_in_parts() -> None:
    rng = np.random.default_rng(0)
    d, g = rng.normal(2, 1, 25), rng.normal(0, 1, 25)
    for target in (0.0, 0.005, 0.04, 0.08, 0.2):
        allowed = int(np.floor(target * 25 + 1e-9))
        assert threshold_allowing(d, g, allowed) == threshold_for_miss_rate(d, g, target)
    with pytest.raises(ValueError, match="allowed misses"):
        threshold_allowing(d, g, -1)


def test_miss_tradeoff_names_what_each_allowed_miss_buys() -> None:
    # one defect scores like the good parts: catching it fails 3 of 4 good parts
    d = [0.15, 0.7, 0.8, 0.9]
    g = [0.1, 0.2, 0.3, 0.4]
    rows = miss_tradeoff(d, g, 3)
    assert [r.missed for r in rows] == [0, 1]  # stops once every good part passes
    assert rows[0].threshold == pytest.approx((0.15 + 0.1) / 2)
    assert rows[0].false_reject_rate == pytest.approx(0.75)
    assert rows[1].miss_rate == pytest.approx(0.25) and rows[1].false_reject_rate == 0.0
    assert rows[1].target_miss_rate == pytest.approx(0.25)
    assert rows[1].threshold == threshold_for_miss_rate(d, g, rows[1].target_miss_rate)
    # never more rows than defective parts to let pass, and none without them
    assert [r.missed for r in miss_tradeoff([0.1, 0.2], [0.5, 0.6], 5)] == [0, 1]
    assert len(miss_tradeoff([], [0.5], 3)) == 1


def test_two_versions_are_compared_on_the_parts_both_scored() -> None:
    """`evaluate --against`: each version at its own threshold, on the common parts only; a
    part one version could not inspect is a FAIL for it, as on the line."""

    def part(pid: str, label: str, score: float | None) -> PartResult:
        fault = "unreadable" if score is None else None
        return PartResult(pid, label, score, "dent" if label != "ok" else None, fault=fault)

    new = [
        part("d1", "dent", 0.9),  # both catch it
        part("d2", "dent", 0.6),  # new catches it, old misses it
        part("d3", "dent", 0.2),  # new misses it, old catches it
        part("g1", "ok", 0.1),  # both pass it
        part("g2", "ok", 0.7),  # new rejects it, old passes it
        part("g3", "ok", 0.2),  # new passes it, old rejected it
        part("g4", "ok", None),  # new cannot inspect it: FAIL; old passes it
        part("adapt-1", "ok", 0.1),  # only the new one scored it (the old one's adapt part)
    ]
    old = [
        part("d1", "dent", 0.9),
        part("d2", "dent", 0.3),
        part("d3", "dent", 0.8),
        part("g1", "ok", 0.1),
        part("g2", "ok", 0.3),
        part("g3", "ok", 0.6),
        part("g4", "ok", 0.1),
    ]
    this = compute_metrics(new, 0.5, ["dent"])
    this.parts = new
    other = compute_metrics(old, 0.4, ["dent"])
    other.parts = old
    c = compare_versions(this, ["dent"], other, ["dent"], "v1")
    assert c.n_common == 7
    assert (c.caught, c.missed, c.rejected, c.passed) == (["d2"], ["d3"], ["g2", "g4"], ["g3"])
    assert c.this.miss_rate == pytest.approx(1 / 3) and c.other.miss_rate == pytest.approx(1 / 3)
    assert c.this.false_reject_rate == pytest.approx(2 / 4)  # g2 and the fault g4
    assert c.other.false_reject_rate == pytest.approx(1 / 4)
    d = c.as_dict()
    assert d["version"] == "v1" and d["differs"]["rejected"] == ["g2", "g4"]
    assert d["this"]["n_fault"] == 1 and d["other"]["n_fault"] == 0
