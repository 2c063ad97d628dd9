"""Decisions: the threshold rule, the defect class and box, and FAULT for anything not finite."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from inspect_app.backends.base import BackendError, BackendResult
from inspect_app.decision import decide, decide_batch, defect_box, fault


@dataclass
class Card:
    classes: tuple[str, ...] = ("crack", "dent")
    threshold: float = 0.5


def result(
    scores: list[float], probs: list[list[float]], heat: np.ndarray | None = None
) -> BackendResult:
    n = len(scores)
    heatmap = np.zeros((n, 4, 4), np.float32) if heat is None else heat
    return BackendResult(
        defect_score=np.array(scores, np.float32),
        class_probs=np.array(probs, np.float32),
        heatmap=heatmap,
        anomaly_score=np.arange(n, dtype=np.float32),
    )


def test_threshold_rule_and_class() -> None:
    verdicts = decide_batch(result([0.2, 0.5, 0.9], [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]), Card())
    assert [v.verdict for v in verdicts] == ["PASS", "FAIL", "FAIL"]
    assert verdicts[0].defect_class is None and verdicts[0].box is None
    assert verdicts[1].defect_class == "dent"
    assert verdicts[2].defect_class == "crack"
    assert verdicts[2].class_probs == pytest.approx({"crack": 0.6, "dent": 0.4})
    assert not verdicts[0].rejected and verdicts[1].rejected


@pytest.mark.parametrize("field", ["defect_score", "class_probs", "heatmap", "anomaly_score"])
def test_non_finite_output_is_fault_never_pass(field: str) -> None:
    r = result([0.1, 0.1], [[0.5, 0.5], [0.5, 0.5]])
    values = getattr(r, field)
    values.reshape(values.shape[0], -1)[0, 0] = np.nan  # a view: part 0 gets a NaN
    verdicts = decide_batch(r, Card())
    assert verdicts[0].verdict == "FAULT" and "NaN" in (verdicts[0].fault_reason or "")
    assert verdicts[1].verdict == "PASS"


def test_box_follows_the_peak_region() -> None:
    heat = np.zeros((8, 8), np.float32)
    heat[2:4, 5:8] = 1.0  # the defect
    heat[6, 0] = 0.4  # weaker blob elsewhere, below half the peak
    assert defect_box(heat) == pytest.approx((5 / 8, 2 / 8, 8 / 8, 4 / 8))
    fail = decide(result([0.9], [[1.0, 0.0]], heat[None]), Card())
    assert fail.box == pytest.approx((5 / 8, 2 / 8, 1.0, 4 / 8))


def test_unknown_defect_kind_fails_without_a_class() -> None:
    verdict = decide(result([0.8], np.zeros((1, 0)).tolist()), Card(classes=()))
    assert verdict.verdict == "FAIL" and verdict.defect_class is None


def test_mismatched_classes_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="3 defect classes"):
        decide(result([0.9], [[1.0, 0.0]]), Card(classes=("a", "b", "c")))
    with pytest.raises(BackendError, match="heatmap"):
        BackendResult(np.zeros(2), np.zeros((2, 1)), np.zeros((3, 4, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="reason"):
        fault("")
