"""The quality numbers of a line model on labeled parts (DESIGN §5, `evaluate --json`).

Definitions (a part is FAIL when `defect_score >= threshold`, or when it could not be inspected):

- `miss_rate`: defective parts passed / defective parts.
- `false_reject_rate`: good parts failed / good parts (None when there are no good parts).
- `miss_rate_upper_95`, `false_reject_rate_upper_95` (extensions): how high each rate could
  really be, given how few parts measured it: the one-sided 95 % Clopper-Pearson upper bound
  (0 misses in 25 defective parts: at most 11.3 %). None where the rate is.
- `auroc`: defect score vs. defective-or-not over the inspected parts (None when one side is empty).
- `accuracy`: PASS/FAIL decision right, over all parts.
- `class_accuracy`: defect class named right, among defective parts caught whose class the line
  was taught (a class never in the adapt parts cannot be named; those parts still count as
  defects everywhere else). None when no such part was caught.
- `per_class`: per label, its count, how many were failed, recall (failed / count; for `ok`,
  `recall` is the fraction correctly passed) and, for taught defect classes, how many were named
  right. A class never in the adapt data is flagged `"class never in adapt data: can't be named"`.
- `n_fault`: parts that could not be inspected. They count as FAIL in every rate above (never as
  PASS) and are listed in `faults`; AUROC uses inspected parts only.
- `latency_ms`: p50 / p95 of per-part inference time.
- `pixel_auroc`: heat-map vs. defect masks, pooled over the pixels of every inspected part that
  has a mask (good parts without a mask count as all-clear), when any mask exists.
- `mask_problems`: parts whose mask could not be read, each `{"part_id", "reason"}`. The mask is
  ground truth, not a sensor reading: these parts are inspected and count in every metric but
  `pixel_auroc`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensors.sample import OK_LABEL

UNNAMEABLE = "class never in adapt data: can't be named"
_PIXEL_GRID = 64  # masks and heat-maps are compared on this grid: enough for pixel AUROC, cheap


@dataclass
class PartResult:
    """What the line model said about one labeled part."""

    part_id: str
    label: str
    defect_score: float | None  # None when the part could not be inspected
    predicted_class: str | None = None  # the most likely taught defect class
    fault: str | None = None
    latency_ms: float | None = None
    heatmap: np.ndarray | None = None  # (h, w) in [0, 1]
    mask: np.ndarray | None = None  # (H, W) bool

    @property
    def is_defective(self) -> bool:
        return self.label != OK_LABEL

    def verdict(self, threshold: float) -> str:
        """The line's decision at `threshold`: FAULT when not inspected (a FAIL on the line,
        never a PASS), FAIL at or above the threshold, else PASS."""
        if self.fault is not None or self.defect_score is None:
            return "FAULT"
        return "FAIL" if self.defect_score >= threshold else "PASS"


@dataclass
class ClassStats:
    """Counts for one label in `per_class`."""

    n: int = 0
    failed: int = 0
    named: int = 0
    note: str | None = None

    def as_dict(self, label: str) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "failed": self.failed}
        if label == OK_LABEL:
            out["passed"] = self.n - self.failed
            out["recall"] = _ratio(self.n - self.failed, self.n)
        else:
            out["recall"] = _ratio(self.failed, self.n)
            if self.note is None:
                out["named_correctly"] = self.named
                out["class_recall"] = _ratio(self.named, self.n)
        if self.note is not None:
            out["note"] = self.note
        return out


@dataclass
class Report:
    """The metrics object; `as_dict()` is the `evaluate --json` document."""

    n: int
    n_defective: int
    n_fault: int
    miss_rate: float | None
    false_reject_rate: float | None
    auroc: float | None
    accuracy: float | None
    class_accuracy: float | None
    per_class: dict[str, dict[str, Any]]
    threshold: float
    latency_ms: dict[str, float | None]
    pixel_auroc: float | None = None
    faults: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    miss_rate_upper_95: float | None = None
    false_reject_rate_upper_95: float | None = None
    # parts inspected whose mask (ground truth) could not be read: {"part_id", "reason"}; they
    # count in every metric but pixel_auroc
    mask_problems: list[dict[str, str]] = field(default_factory=list)
    # the scored parts, for `evaluate --parts-csv` (not part of the metrics document)
    parts: list[PartResult] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "n_defective": self.n_defective,
            "n_fault": self.n_fault,
            "miss_rate": self.miss_rate,
            "false_reject_rate": self.false_reject_rate,
            "miss_rate_upper_95": self.miss_rate_upper_95,
            "false_reject_rate_upper_95": self.false_reject_rate_upper_95,
            "auroc": self.auroc,
            "accuracy": self.accuracy,
            "class_accuracy": self.class_accuracy,
            "per_class": self.per_class,
            "threshold": self.threshold,
            "latency_ms": self.latency_ms,
            "faults": self.faults,
            "mask_problems": self.mask_problems,
            "notes": self.notes,
        }
        if self.pixel_auroc is not None:
            out["pixel_auroc"] = self.pixel_auroc
        return out


PARTS_CSV_COLUMNS = (
    "part_id",
    "label",
    "verdict",
    "outcome",
    "defect_score",
    "predicted_class",
    "fault",
)


def part_rows(parts: Sequence[PartResult], threshold: float) -> list[dict[str, str]]:
    """One row per part for `evaluate --parts-csv`: the verdict (PASS / FAIL / FAULT) and its
    outcome against the label: `caught`, `missed` (a defective part passed), `passed`,
    `false_reject` (a good part failed), or `fault` (not inspected: FAIL on the line)."""
    rows = []
    for p in parts:
        verdict = p.verdict(threshold)
        if verdict == "FAULT":
            outcome = "fault"
        elif verdict == "FAIL":
            outcome = "caught" if p.is_defective else "false_reject"
        else:
            outcome = "missed" if p.is_defective else "passed"
        rows.append(
            {
                "part_id": p.part_id,
                "label": p.label,
                "verdict": verdict,
                "outcome": outcome,
                "defect_score": "" if p.defect_score is None else f"{p.defect_score:.6f}",
                "predicted_class": p.predicted_class or "",
                "fault": p.fault or "",
            }
        )
    return rows


COMPARED = ("miss_rate", "false_reject_rate", "auroc", "accuracy", "class_accuracy", "n_fault")


@dataclass
class Comparison:
    """Two versions of a line on the parts both scored (`evaluate --against`): each one's
    metrics on those parts, and the parts they decide differently, named from the side of
    the version evaluated (`caught`: defective parts it fails that the other passes;
    `missed`: the reverse; `rejected`: good parts it fails that the other passes; `passed`:
    the reverse)."""

    version: str
    n_common: int
    this: Report
    other: Report
    caught: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The `against` object of `evaluate --json` (an extension of DESIGN §5)."""
        return {
            "version": self.version,
            "n_common": self.n_common,
            "this": {k: getattr(self.this, k) for k in COMPARED},
            "other": {k: getattr(self.other, k) for k in COMPARED},
            "differs": {
                "caught": self.caught,
                "missed": self.missed,
                "rejected": self.rejected,
                "passed": self.passed,
            },
        }


def compare_versions(
    this: Report,
    this_classes: Sequence[str],
    other: Report,
    other_classes: Sequence[str],
    other_version: str,
) -> Comparison:
    """`this` and `other` (two versions' reports on one dataset) on the parts both scored (a
    version taught from this folder leaves its own adapt parts out, so the sets can differ)."""
    theirs = {p.part_id: p for p in other.parts}
    mine = [p for p in this.parts if p.part_id in theirs]
    paired = [theirs[p.part_id] for p in mine]
    out = Comparison(
        other_version,
        len(mine),
        compute_metrics(mine, this.threshold, this_classes),
        compute_metrics(paired, other.threshold, other_classes),
    )
    for a, b in zip(mine, paired, strict=True):
        fail_a = a.verdict(this.threshold) != "PASS"
        fail_b = b.verdict(other.threshold) != "PASS"
        if fail_a == fail_b:
            continue
        if a.is_defective:
            (out.caught if fail_a else out.missed).append(a.part_id)
        else:
            (out.rejected if fail_a else out.passed).append(a.part_id)
    return out


def format_rate(rate: float | None) -> str:
    """A rate for people: `12.5 %`, or `n/a` when it is undefined (e.g. no good parts)."""
    return "n/a" if rate is None else f"{100 * rate:.1f} %"


def format_metric(value: object) -> str:
    """A metric value for people: floats to 4 decimals, `n/a` for an undefined one."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def rate_upper_bound(events: int, trials: int, confidence: float = 0.95) -> float | None:
    """One-sided exact (Clopper-Pearson) upper confidence bound of a rate seen as
    `events` in `trials`: the true rate is at most this with `confidence`. None for no trials."""
    if trials == 0:
        return None
    if events >= trials:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, events + 1, trials - events))


def parts_to_show_rate(rate: float, confidence: float = 0.95) -> int:
    """How many parts, none of them an event, it takes for `rate_upper_bound` to reach `rate`
    (0 misses in 598 defective parts bound the miss rate at 0.5 %)."""
    return math.ceil(math.log(1.0 - confidence) / math.log1p(-rate))


def auroc(
    scores: Sequence[float] | np.ndarray, positive: Sequence[bool] | np.ndarray
) -> float | None:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); None if a side is empty."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    if s.shape != y.shape:
        msg = f"scores {s.shape} and labels {y.shape} must have the same shape"
        raise ValueError(msg)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    if not np.all(np.isfinite(s)):
        msg = "scores must be finite to compute an AUROC"
        raise ValueError(msg)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def percentile_ms(latencies: Sequence[float]) -> dict[str, float | None]:
    """p50 and p95 of per-part latencies (None when none were measured)."""
    if len(latencies) == 0:
        return {"p50": None, "p95": None}
    arr = np.asarray(latencies, dtype=np.float64)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95))}


def _resize(a: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    import cv2

    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(a.astype(np.float32), (size, size), interpolation=interp)


def pixel_auroc(parts: Sequence[PartResult]) -> float | None:
    """Heat-map vs. mask AUROC pooled over pixels; None when no inspected part has a mask."""
    if not any(p.mask is not None for p in parts):
        return None
    scores: list[np.ndarray] = []
    truth: list[np.ndarray] = []
    for p in parts:
        if p.heatmap is None or p.fault is not None:
            continue
        if p.mask is None:
            if p.is_defective:
                continue  # a defect without a mask: where it is is unknown
            mask = np.zeros((_PIXEL_GRID, _PIXEL_GRID), dtype=bool)
        else:
            mask = _resize(p.mask.astype(np.float32), _PIXEL_GRID, nearest=True) > 0.5
        scores.append(_resize(p.heatmap, _PIXEL_GRID, nearest=False).ravel())
        truth.append(mask.ravel())
    if not scores:
        return None
    return auroc(np.concatenate(scores), np.concatenate(truth))


def compute_metrics(
    parts: Sequence[PartResult],
    threshold: float,
    taught_classes: Sequence[str],
) -> Report:
    """All §5 metrics for `parts` scored by a line taught `taught_classes` at `threshold`."""
    taught = set(taught_classes)
    per: dict[str, ClassStats] = {}
    n_def = n_fault = correct = caught_nameable = named_right = 0
    missed = false_rejects = n_good = 0
    inspected_scores: list[float] = []
    inspected_truth: list[bool] = []
    faults: list[dict[str, str]] = []
    for p in parts:
        stats = per.setdefault(p.label, ClassStats())
        stats.n += 1
        if p.is_defective and p.label not in taught:
            stats.note = UNNAMEABLE
        verdict = p.verdict(threshold)
        failed = verdict != "PASS"
        if verdict == "FAULT":
            n_fault += 1
            faults.append({"part_id": p.part_id, "reason": p.fault or "no score"})
        else:
            assert p.defect_score is not None  # an inspected part has a score
            inspected_scores.append(p.defect_score)
            inspected_truth.append(p.is_defective)
        stats.failed += int(failed)
        if p.is_defective:
            n_def += 1
            missed += int(not failed)
            correct += int(failed)
            if failed and p.fault is None and p.label in taught:
                caught_nameable += 1
                if p.predicted_class == p.label:
                    named_right += 1
                    stats.named += 1
        else:
            n_good += 1
            false_rejects += int(failed)
            correct += int(not failed)
    notes: list[str] = []
    if n_good == 0:
        notes.append("no good parts in the data: false-reject rate and AUROC are undefined")
    if n_fault:
        notes.append(f"{n_fault} part(s) could not be inspected; counted as FAIL, listed in faults")
    unseen = sorted(k for k, v in per.items() if v.note == UNNAMEABLE)
    if unseen:
        notes.append(
            "defect classes never in the adapt data (still counted as defects): "
            + ", ".join(unseen)
        )
    return Report(
        n=len(parts),
        n_defective=n_def,
        n_fault=n_fault,
        miss_rate=_ratio(missed, n_def),
        false_reject_rate=_ratio(false_rejects, n_good),
        miss_rate_upper_95=rate_upper_bound(missed, n_def),
        false_reject_rate_upper_95=rate_upper_bound(false_rejects, n_good),
        auroc=auroc(inspected_scores, inspected_truth) if inspected_scores else None,
        accuracy=_ratio(correct, len(parts)),
        class_accuracy=_ratio(named_right, caught_nameable),
        per_class={k: per[k].as_dict(k) for k in sorted(per)},
        threshold=float(threshold),
        latency_ms=percentile_ms([p.latency_ms for p in parts if p.latency_ms is not None]),
        pixel_auroc=pixel_auroc(parts),
        faults=faults,
        notes=notes,
    )


def threshold_for_miss_rate(
    defect_scores: Sequence[float] | np.ndarray,
    good_scores: Sequence[float] | np.ndarray,
    target_miss_rate: float,
) -> float:
    """The line's one threshold rule: the highest threshold whose miss rate meets the target.

    A part FAILs when `score >= threshold`. With `m = floor(target * n_defective)` misses allowed,
    the threshold sits just under the (m+1)-th lowest defect score; it is then lowered to halfway
    toward the highest score below it, so a new defect a little weaker than any seen is
    still caught (a miss costs more than a false reject); the allowed misses stay missed.
    Without defective parts the threshold lies just above the highest good score.
    """
    if not 0.0 <= target_miss_rate < 1.0:
        msg = f"target miss rate must be in [0, 1), got {target_miss_rate}"
        raise ValueError(msg)
    n_defective = np.asarray(defect_scores).size
    return threshold_allowing(
        defect_scores, good_scores, int(np.floor(target_miss_rate * n_defective + 1e-9))
    )


def threshold_allowing(
    defect_scores: Sequence[float] | np.ndarray,
    good_scores: Sequence[float] | np.ndarray,
    allowed: int,
) -> float:
    """`threshold_for_miss_rate`'s rule with `allowed` misses: just under the (allowed+1)-th
    lowest defect score, lowered halfway toward the highest score below it."""
    if allowed < 0:
        msg = f"allowed misses must be >= 0, got {allowed}"
        raise ValueError(msg)
    d = np.sort(np.asarray(defect_scores, dtype=np.float64))
    g = np.sort(np.asarray(good_scores, dtype=np.float64))
    if d.size == 0 and g.size == 0:
        msg = "cannot set a threshold without any scored parts"
        raise ValueError(msg)
    if d.size == 0:
        return float(np.nextafter(g[-1], np.inf))
    edge = float(d[min(allowed, d.size - 1)])
    below = np.concatenate([g[g < edge], d[d < edge]])
    if below.size == 0:
        return edge
    return float((edge + below.max()) / 2.0)


def threshold_for_false_reject_rate(
    good_scores: Sequence[float] | np.ndarray, target_false_reject_rate: float
) -> float:
    """The threshold of a line taught from good parts only, where no miss rate can be measured:
    it rejects `r = floor(target * n_good)` of the good parts, the `r` highest scoring, sitting
    halfway between the r-th and the (r+1)-th highest good score (just above the highest at 0).

    Out-of-fold, the share of good parts above the threshold is then r / n_good, at most the
    target: on the five held-out synthetic lines it foretold the false-reject rate on new parts
    (4 % out-of-fold; on the test parts 3.8 %, fused, and 4.2 % since the good parts are
    scored by the line's own memories, left out one at a time; docs/adapt.md, step 7).
    """
    if not 0.0 <= target_false_reject_rate < 1.0:
        msg = f"target false-reject rate must be in [0, 1), got {target_false_reject_rate}"
        raise ValueError(msg)
    g = np.sort(np.asarray(good_scores, dtype=np.float64))[::-1]
    if g.size == 0:
        msg = "cannot set a threshold without any scored good part"
        raise ValueError(msg)
    rejected = min(int(np.floor(target_false_reject_rate * g.size + 1e-9)), g.size - 1)
    if rejected == 0:
        return float(np.nextafter(g[0], np.inf))
    return float((g[rejected - 1] + g[rejected]) / 2.0)


def line_threshold(
    defect_scores: Sequence[float] | np.ndarray,
    good_scores: Sequence[float] | np.ndarray,
    target_miss_rate: float,
    target_false_reject_rate: float,
) -> float:
    """`inspect-app adapt`'s threshold on out-of-fold scores: for the target miss rate
    (`threshold_for_miss_rate`), or, without a defective part, for the target share of good
    parts rejected (`threshold_for_false_reject_rate`)."""
    if np.asarray(defect_scores).size:
        return threshold_for_miss_rate(defect_scores, good_scores, target_miss_rate)
    return threshold_for_false_reject_rate(good_scores, target_false_reject_rate)


@dataclass
class TradeOff:
    """What letting the weakest defective parts pass would buy, on the scored parts."""

    missed: int  # defective parts passed
    miss_rate: float
    false_reject_rate: float | None
    threshold: float
    # the `--target-miss-rate` that gives this threshold (missed / defective parts)
    target_miss_rate: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def miss_tradeoff(
    defect_scores: Sequence[float] | np.ndarray,
    good_scores: Sequence[float] | np.ndarray,
    max_missed: int,
) -> list[TradeOff]:
    """The threshold rule allowing 0, 1, ... `max_missed` misses, and the rates each gives on
    these scores: how much false-reject the weakest few defective parts cost. Stops early when
    fewer defective parts are left, and when the good parts all pass already."""
    d = np.asarray(defect_scores, dtype=np.float64)
    g = np.asarray(good_scores, dtype=np.float64)
    rows: list[TradeOff] = []
    for allowed in range(min(max_missed, max(d.size - 1, 0)) + 1):
        threshold = threshold_allowing(d, g, allowed)
        missed = int((d < threshold).sum())
        frr = float((g >= threshold).mean()) if g.size else None
        rows.append(
            TradeOff(
                missed=missed,
                miss_rate=missed / d.size if d.size else 0.0,
                false_reject_rate=frr,
                threshold=threshold,
                target_miss_rate=allowed / d.size if d.size else 0.0,
            )
        )
        if not frr:
            break
    return rows
