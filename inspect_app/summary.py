"""What a run of the line did, for people: counts, fails by class, speed, and — when the parts
carry labels — misses and false rejects. Printed by `inspect-app demo` and written as HTML."""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inspect_app.metrics import format_rate
from inspect_app.pipeline import InspectedPart
from inspect_app.runtime import StatsSnapshot
from sensors.sample import OK_LABEL


@dataclass
class RunTally:
    """Verdicts against labels, collected as parts are committed (labels may be absent)."""

    outcomes: list[tuple[str | None, str, str | None]] = field(default_factory=list)

    def add(self, parts: list[InspectedPart]) -> None:
        self.outcomes.extend(
            (p.sample.label, p.verdict.verdict, p.verdict.defect_class) for p in parts
        )


@dataclass(frozen=True)
class RunSummary:
    """The numbers of one run. Rates are None when there is nothing to divide by."""

    parts: int
    verdicts: dict[str, int]
    fails_by_class: dict[str, int]
    parts_per_s: float
    latency_p50_ms: float | None  # read to logged, queue wait included
    latency_p95_ms: float | None
    drops: int
    labeled: int
    defective: int
    missed: int  # labeled defective, judged PASS
    false_rejects: int  # labeled ok, judged FAIL
    faults_labeled_ok: int  # labeled ok, could not be inspected (rejected, reported apart)
    class_right: int  # caught defects whose class was named right
    caught: int
    # the work on a batch without the waits: preprocess + model + decision p50s (None: unseen)
    work_p50_ms: float | None = None
    batch_size: int | None = None  # the most parts a batch holds (the pipeline's setting)

    @property
    def miss_rate(self) -> float | None:
        return self.missed / self.defective if self.defective else None

    @property
    def false_reject_rate(self) -> float | None:
        good = self.labeled - self.defective
        return self.false_rejects / good if good else None

    @property
    def class_accuracy(self) -> float | None:
        return self.class_right / self.caught if self.caught else None


def summarize(tally: RunTally, snap: StatsSnapshot, batch_size: int | None = None) -> RunSummary:
    """Combine the pipeline's stats with the labels of the parts it saw (`batch_size`: the
    pipeline's, for the summary's wording)."""
    labeled = [(lab, v, c) for lab, v, c in tally.outcomes if lab is not None]
    defective = [(lab, v, c) for lab, v, c in labeled if lab != OK_LABEL]
    good = [(lab, v, c) for lab, v, c in labeled if lab == OK_LABEL]
    caught = [(lab, v, c) for lab, v, c in defective if v == "FAIL"]
    total = snap.latency["total"]
    return RunSummary(
        parts=snap.parts,
        verdicts=dict(snap.verdicts),
        fails_by_class=dict(Counter({k: v for k, v in snap.fails_by_class.items()}).most_common()),
        parts_per_s=snap.parts_per_s,
        latency_p50_ms=total.p50_ms,
        latency_p95_ms=total.p95_ms,
        drops=sum(snap.drops.values()),
        labeled=len(labeled),
        defective=len(defective),
        missed=sum(v == "PASS" for _, v, _ in defective),
        false_rejects=sum(v == "FAIL" for _, v, _ in good),
        faults_labeled_ok=sum(v == "FAULT" for _, v, _ in good),
        class_right=sum(lab == c for lab, _, c in caught),
        caught=len(caught),
        work_p50_ms=_work_ms(snap),
        batch_size=batch_size,
    )


def _work_ms(snap: StatsSnapshot) -> float | None:
    """preprocess + model + decision, each its p50 (every part records its batch's times)."""
    p50s = [snap.latency[name].p50_ms for name in ("preprocess", "model", "decision")]
    return None if None in p50s else sum(p for p in p50s if p is not None)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def summary_lines(s: RunSummary, line: str) -> list[str]:
    """The summary as text lines for a terminal."""
    v = s.verdicts
    out = [
        f"line {line}: {s.parts} parts  PASS {v.get('PASS', 0)}  FAIL {v.get('FAIL', 0)}  "
        f"FAULT {v.get('FAULT', 0)}  (could not be inspected; rejected, never passed)",
        "fails by class: " + (", ".join(f"{c} {n}" for c, n in s.fails_by_class.items()) or "none"),
        f"speed: {s.parts_per_s:.1f} parts/s end to end; dropped {s.drops}; a batch"
        + (f" (up to {s.batch_size} parts)" if s.batch_size else "")
        + f" inspected in {_ms(s.work_p50_ms)} (p50 of preprocess + model + decision)",
        f"from read to logged: p50 {_ms(s.latency_p50_ms)}, p95 {_ms(s.latency_p95_ms)}, "
        "waiting in the queues included (a replay feeds parts as fast as the line takes them; "
        "at a camera's pace the queues stay near empty)",
    ]
    if s.labeled:
        out.append(
            f"against the labels ({s.labeled} parts, {s.defective} defective): miss rate "
            f"{format_rate(s.miss_rate)} ({s.missed} missed), false-reject rate "
            f"{format_rate(s.false_reject_rate)} ({s.false_rejects} good parts failed), "
            f"class right on {format_rate(s.class_accuracy)} of caught defects"
        )
    return out


def write_summary_html(s: RunSummary, line: str, out: Path, report: Path | None = None) -> Path:
    """A one-page HTML summary of the run (links the full defect report when there is one)."""
    rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{n}</td></tr>" for c, n in s.fails_by_class.items()
    )
    items = "".join(f"<li>{html.escape(t)}</li>" for t in summary_lines(s, line))
    link = ""
    if report is not None:
        name = html.escape(report.name)
        link = f'<p>Full defect report: <a href="{name}">{name}</a></p>'

    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>inspect-app run: {html.escape(line)}</title>
<style>body{{font-family:sans-serif;max-width:52em;margin:2em auto}}
td,th{{border:1px solid #ccc;padding:.2em .6em}}table{{border-collapse:collapse}}</style></head>
<body><h1>Line {html.escape(line)}</h1><ul>{items}</ul>
<h2>Fails by class</h2><table><tr><th>class</th><th>parts</th></tr>{rows}</table>{link}
</body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
