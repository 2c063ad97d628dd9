"""Drift: the line's parts scoring otherwise than they did when this model version started on it.

A line model is taught and its threshold set on parts of one time: one light, one camera
position and focus, one sensor mounting, one batch of material. When one of them changes (a
lamp ageing, a camera knocked, a lens out of focus, another supplier's material), the parts'
defect scores move: up, and false rejects follow; or down, and defects start to pass. The
monitor sees it in the scores the line decides on, before the rejects (or the misses) pile up:

- **reference**: the defect scores of the first `reference_parts` parts this version decided on
  this line (read back from the defect log when the service starts, so a restart does not
  forget them; collected live while the log holds fewer);
- **recent**: the last `window` parts' scores;
- every `check_every` parts, the two are compared by rank (Mann-Whitney U, two-sided, ties
  corrected): how likely a recent part is to score higher than a reference part (0.5 while
  nothing changed), and the chance of a difference that large with nothing changed. Below
  `alpha` (1e-6) the line has drifted; it is over once the chance is back above `clear_alpha`
  (1e-2). A rank test sees a shift anywhere in the scores, also among the parts near the
  threshold, where it turns into rejects, and does not care how the scores are spread.

The state says it in the operator's terms too: the share of parts rejected then and now. FAULT
parts have no score and do not count. A run of defective parts moves the scores as well: the
message says so. Another version (a reload) is judged against its own reference.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scipy.stats import mannwhitneyu

if TYPE_CHECKING:
    from inspect_app.pipeline import InspectedPart

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftSettings:
    """How much history the monitor compares, and how sure it must be."""

    reference_parts: int = 500
    window: int = 200
    check_every: int = 10
    alpha: float = 1e-6
    clear_alpha: float = 1e-2
    min_reference: int = 100  # fewer reference parts than this: no judgement yet

    def __post_init__(self) -> None:
        if not 0 < self.alpha < self.clear_alpha < 1:
            msg = f"drift needs 0 < alpha < clear_alpha < 1, got {self.alpha}, {self.clear_alpha}"
            raise ValueError(msg)
        for name in ("reference_parts", "window", "check_every", "min_reference"):
            if getattr(self, name) < 1:
                msg = f"DriftSettings.{name} must be at least 1, got {getattr(self, name)}"
                raise ValueError(msg)
        if self.min_reference > self.reference_parts:
            msg = (
                f"min_reference ({self.min_reference}) cannot exceed reference_parts "
                f"({self.reference_parts})"
            )
            raise ValueError(msg)


@dataclass(frozen=True)
class DriftState:
    """What the monitor says now (also for /healthz and /metrics)."""

    version: str
    reference: int  # parts in the version's reference
    recent: int  # parts in the recent window
    higher: float | None  # the chance a recent part scores higher than a reference part
    p_value: float | None  # None until both are full enough to judge
    drifted: bool
    rejected_reference: float | None  # the share of the reference parts rejected (FAIL)
    rejected_recent: float | None  # and of the recent ones

    @property
    def direction(self) -> str:
        """ "higher" or "lower": the way the recent scores lean."""
        return "lower" if self.higher is not None and self.higher < 0.5 else "higher"

    def describe(self, line: str) -> str:
        higher = "?" if self.higher is None else f"{self.higher:.2f}"
        chance = "?" if self.p_value is None else f"{self.p_value:.1g}"
        rejected = ""
        if self.rejected_reference is not None and self.rejected_recent is not None:
            rejected = (
                f"; rejected {100 * self.rejected_reference:.0f} % of them then, "
                f"{100 * self.rejected_recent:.0f} % of the recent ones"
            )
        then = "false rejects follow" if self.direction == "higher" else "defects may start to pass"
        return (
            f"line {line} {self.version}: parts score {self.direction} than when this version "
            f"started: the last {self.recent} parts against its first {self.reference} (a "
            f"recent part scores higher than a first one {higher} of the time, 0.50 expected; "
            f"chance {chance}{rejected}); {then}. The light, the camera (position, focus), the "
            "material or the process has changed, or more parts are defective: look at the "
            "line; if the parts are good, teach the line again (or `inspect-app calibrate` on "
            "newly labeled parts)"
        )


class _Version:
    """One model version's reference and recent scores (score, rejected)."""

    def __init__(
        self, version: str, reference: Sequence[tuple[float, bool]], settings: DriftSettings
    ) -> None:
        self.version = version
        self.settings = settings
        self.reference = list(reference)[: settings.reference_parts]
        self.recent: deque[tuple[float, bool]] = deque(maxlen=settings.window)
        self.since_check = 0
        self.drifted = False
        self.higher: float | None = None
        self.p_value: float | None = None

    def add(self, score: float, rejected: bool) -> bool:
        """Take one part; True when the judgement was made again."""
        if len(self.reference) < self.settings.reference_parts:
            self.reference.append((score, rejected))
            return False
        self.recent.append((score, rejected))
        self.since_check += 1
        if len(self.reference) < self.settings.min_reference:
            return False
        if len(self.recent) < self.settings.window or self.since_check < self.settings.check_every:
            return False
        self.since_check = 0
        recent = [v for v, _ in self.recent]
        first = [v for v, _ in self.reference]
        if min(recent + first) == max(recent + first):  # every score the same: no evidence
            self.higher, self.p_value = 0.5, 1.0
        else:
            test = mannwhitneyu(recent, first, alternative="two-sided", method="asymptotic")
            self.higher = float(test.statistic) / (len(recent) * len(first))
            self.p_value = float(test.pvalue)
        if self.drifted:
            self.drifted = self.p_value <= self.settings.clear_alpha
        else:
            self.drifted = self.p_value < self.settings.alpha
        return True

    def state(self) -> DriftState:
        def share(parts: Sequence[tuple[float, bool]]) -> float | None:
            return sum(r for _, r in parts) / len(parts) if parts else None

        return DriftState(
            self.version,
            len(self.reference),
            len(self.recent),
            self.higher,
            self.p_value,
            self.drifted,
            share(self.reference),
            share(self.recent),
        )


class DriftMonitor:
    """Watches every part's defect score for drift (see the module doc); the pipeline hands it
    each part in its log stage, just before the part's row is committed (`Pipeline(watchers=
    ...)`), off the reject signal's path: reading a version's reference from the log must not
    hold a gate's signal back.

    `reference(version, n)` gives the (defect score, rejected) of a version's first `n` parts on
    this line, oldest first (`DefectStore.first_scores` for the line); `on_change(state)` is
    called when the line drifts and when it is back (the service logs it and runs
    `--drift-command`). Thread-safe: parts arrive from the pipeline, `state()` is read by the
    HTTP endpoints."""

    name = "drift"

    def __init__(
        self,
        line: str,
        reference: Callable[[str, int], Sequence[tuple[float, bool]]],
        settings: DriftSettings | None = None,
        on_change: Callable[[DriftState], None] | None = None,
    ) -> None:
        self.line = line
        self.settings = settings or DriftSettings()
        self._reference = reference
        self._on_change = on_change
        self._lock = threading.Lock()
        self._current: _Version | None = None

    def handle(self, part: InspectedPart) -> None:
        score = part.verdict.defect_score
        if part.verdict.verdict == "FAULT" or score is None or not math.isfinite(score):
            return
        version = part.model_version
        with self._lock:
            current = self._current
            if current is None or current.version != version:
                first = self._reference(version, self.settings.reference_parts)
                current = self._current = _Version(version, first, self.settings)
            was = current.drifted
            judged = current.add(float(score), part.verdict.verdict == "FAIL")
            state = current.state() if judged and current.drifted != was else None
        if state is None:
            return
        if state.drifted:
            log.warning("%s", state.describe(self.line))
        else:
            log.warning(
                "line %s %s: the scores are back: the last %d parts score like its first %d "
                "(chance %.2g)",
                self.line,
                state.version,
                state.recent,
                state.reference,
                state.p_value,
            )
        if self._on_change is not None:
            self._on_change(state)

    def state(self) -> DriftState | None:
        with self._lock:
            return None if self._current is None else self._current.state()

    def close(self) -> None:
        return None
