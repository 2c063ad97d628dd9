"""Running statistics of a pipeline: parts, verdicts, per-stage latency, queue depths, drops.

Thread-safe; every stage writes here and the HTTP `/metrics` endpoint, the console and the demo
summary read a consistent `StatsSnapshot`. Latency percentiles come from the last
`LATENCY_WINDOW` observations per stage, so memory stays flat on a shift-long run.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from inspect_app.decision import VERDICTS

LATENCY_WINDOW = 4096
STAGES: tuple[str, ...] = (
    "source",
    "preprocess",
    "model",
    "decision",
    "signal",
    "log",
    "total",
)
"""Per-part latency stages. `signal` is from the part leaving the source to its reject signal
sent (the sinks called), `total` to its row committed."""


@dataclass(frozen=True)
class LatencySummary:
    """p50 / p95 of one stage in milliseconds over the recent window (None until observed)."""

    p50_ms: float | None
    p95_ms: float | None
    count: int


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy of the running statistics."""

    parts: int
    verdicts: dict[str, int]
    fails_by_class: dict[str, int]
    latency: dict[str, LatencySummary]
    queue_depth: dict[str, int]
    queue_capacity: dict[str, int]
    drops: dict[str, int]
    sink_errors: dict[str, int]
    store_retries: int
    store_error: str | None
    uptime_s: float
    busy_s: float
    source_backlog: int | None = None  # parts waiting at the source (a hot folder's unread files)
    fault_run: int = 0  # the latest parts that were all FAULT, in a row (0: the last one was not)
    last_fault: str | None = None  # the latest FAULT's reason
    audits: int = 0  # passed parts picked at random for an operator's check (--audit-every)

    @property
    def parts_per_s(self) -> float:
        """Parts per second since the first part entered (0 before that)."""
        return self.parts / self.busy_s if self.busy_s > 0 else 0.0


@dataclass
class RuntimeStats:
    """The counters; call the `record_*` methods from any thread, read with `snapshot()`."""

    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _parts: int = 0
    _first_part: float | None = None
    _last_part: float | None = None
    _verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    _fails_by_class: dict[str, int] = field(default_factory=dict)
    _latency: dict[str, deque[float]] = field(
        default_factory=lambda: {s: deque(maxlen=LATENCY_WINDOW) for s in STAGES}
    )
    _latency_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    _queues: dict[str, tuple[Callable[[], int], int]] = field(default_factory=dict)
    _drops: dict[str, int] = field(default_factory=dict)
    _sink_errors: dict[str, int] = field(default_factory=dict)
    _store_retries: int = 0
    _store_error: str | None = None
    _backlog: Callable[[], int] | None = None
    _fault_run: int = 0
    _last_fault: str | None = None
    _audits: int = 0

    def watch_backlog(self, backlog: Callable[[], int]) -> None:
        """Report the parts waiting at the source (read at snapshot time), e.g. a hot folder's
        files not read yet: a line that falls behind its camera shows here."""
        with self._lock:
            self._backlog = backlog

    def watch_queue(self, name: str, depth: Callable[[], int], capacity: int) -> None:
        """Report this queue's depth (read at snapshot time) under `name`."""
        with self._lock:
            self._queues[name] = (depth, capacity)
            self._drops.setdefault(name, 0)

    def record_part_started(self) -> None:
        with self._lock:
            if self._first_part is None:
                self._first_part = time.monotonic()

    def record_latency(self, stage: str, seconds: float) -> None:
        if stage not in self._latency:
            msg = f"unknown pipeline stage {stage!r}; expected one of {STAGES}"
            raise ValueError(msg)
        with self._lock:
            self._latency[stage].append(seconds * 1000.0)
            self._latency_counts[stage] += 1

    def record_verdict(
        self,
        verdict: str,
        defect_class: str | None,
        fault_reason: str | None = None,
        audit: bool = False,
    ) -> None:
        """A logged part; `audit`: a passed part picked for an operator's check."""
        with self._lock:
            self._parts += 1
            self._audits += audit
            self._last_part = time.monotonic()
            self._verdicts[verdict] = self._verdicts.get(verdict, 0) + 1
            if verdict == "FAULT":
                self._fault_run += 1
                self._last_fault = fault_reason
            else:
                self._fault_run = 0
            if verdict == "FAIL":
                key = defect_class or "unclassified"
                self._fails_by_class[key] = self._fails_by_class.get(key, 0) + 1

    def record_drop(self, queue_name: str, n: int = 1) -> None:
        with self._lock:
            self._drops[queue_name] = self._drops.get(queue_name, 0) + n

    def record_sink_error(self, sink: str) -> None:
        with self._lock:
            self._sink_errors[sink] = self._sink_errors.get(sink, 0) + 1

    def record_store_retry(self, error: str) -> None:
        with self._lock:
            self._store_retries += 1
            self._store_error = error

    def record_store_ok(self) -> None:
        with self._lock:
            self._store_error = None

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            latency = {
                s: _summarize(self._latency[s], self._latency_counts[s]) for s in self._latency
            }
            now = time.monotonic()
            end = self._last_part if self._last_part is not None else now
            busy = end - self._first_part if self._first_part is not None else 0.0
            return StatsSnapshot(
                parts=self._parts,
                verdicts=dict(self._verdicts),
                fails_by_class=dict(self._fails_by_class),
                latency=latency,
                queue_depth={n: int(depth()) for n, (depth, _) in self._queues.items()},
                queue_capacity={n: cap for n, (_, cap) in self._queues.items()},
                drops=dict(self._drops),
                sink_errors=dict(self._sink_errors),
                store_retries=self._store_retries,
                store_error=self._store_error,
                uptime_s=now - self.started,
                busy_s=busy,
                source_backlog=None if self._backlog is None else int(self._backlog()),
                fault_run=self._fault_run,
                last_fault=self._last_fault,
                audits=self._audits,
            )


def _summarize(values: deque[float], count: int) -> LatencySummary:
    if not values:
        return LatencySummary(None, None, count)
    p50, p95 = np.percentile(np.fromiter(values, dtype=np.float64), [50, 95])
    return LatencySummary(float(p50), float(p95), count)


def prometheus_text(snap: StatsSnapshot, line: str, model_version: str = "") -> str:
    """The snapshot in the Prometheus text exposition format (version 0.0.4); with
    `model_version`, an info metric naming the version inspecting (it changes on a reload)."""
    label = prometheus_label(line)
    out: list[str] = []

    def metric(name: str, kind: str, help_text: str, rows: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{{{labels}}} {_number(value)}" for labels, value in rows)

    line_l = f'line="{label}"'
    if model_version:
        metric(
            "inspect_model_info",
            "gauge",
            "The line model version inspecting (always 1).",
            [(f'{line_l},version="{prometheus_label(model_version)}"', 1)],
        )
    metric("inspect_parts_total", "counter", "Parts inspected.", [(line_l, snap.parts)])
    metric(
        "inspect_verdicts_total",
        "counter",
        "Parts by verdict (FAULT: could not be inspected).",
        [(f'{line_l},verdict="{v}"', n) for v, n in sorted(snap.verdicts.items())],
    )
    metric(
        "inspect_fault_run",
        "gauge",
        "The latest parts that could not be inspected, in a row (0 once a part is inspected).",
        [(line_l, snap.fault_run)],
    )
    metric(
        "inspect_audits_total",
        "counter",
        "Passed parts picked at random for an operator's check (serve --audit-every).",
        [(line_l, snap.audits)],
    )
    metric(
        "inspect_fails_total",
        "counter",
        "Failed parts by defect class.",
        [
            (f'{line_l},defect_class="{prometheus_label(c)}"', n)
            for c, n in sorted(snap.fails_by_class.items())
        ],
    )
    rows: list[tuple[str, float]] = []
    for stage, summary in snap.latency.items():
        for q, value in (("0.5", summary.p50_ms), ("0.95", summary.p95_ms)):
            if value is not None:
                rows.append((f'{line_l},stage="{stage}",quantile="{q}"', value / 1000.0))
    metric(
        "inspect_stage_latency_seconds",
        "gauge",
        f"Per-part latency by pipeline stage over the last {LATENCY_WINDOW} parts.",
        rows,
    )
    metric(
        "inspect_queue_depth",
        "gauge",
        "Items waiting in each bounded queue between stages.",
        [(f'{line_l},queue="{q}"', d) for q, d in sorted(snap.queue_depth.items())],
    )
    metric(
        "inspect_queue_capacity",
        "gauge",
        "Capacity of each bounded queue.",
        [(f'{line_l},queue="{q}"', c) for q, c in sorted(snap.queue_capacity.items())],
    )
    metric(
        "inspect_dropped_total",
        "counter",
        "Parts dropped because a queue was full (overload).",
        [(f'{line_l},queue="{q}"', d) for q, d in sorted(snap.drops.items())],
    )
    metric(
        "inspect_sink_errors_total",
        "counter",
        "Reject-output or snapshot errors by sink.",
        [
            (f'{line_l},sink="{prometheus_label(s)}"', n)
            for s, n in sorted(snap.sink_errors.items())
        ],
    )
    metric(
        "inspect_store_retries_total",
        "counter",
        "Defect-log writes retried because the database was unavailable.",
        [(line_l, snap.store_retries)],
    )
    metric(
        "inspect_store_available",
        "gauge",
        "1 when the last defect-log write succeeded.",
        [(line_l, 0 if snap.store_error else 1)],
    )
    if snap.source_backlog is not None:
        metric(
            "inspect_source_backlog_parts",
            "gauge",
            "Parts waiting at the source, not read yet (a hot folder's files).",
            [(line_l, snap.source_backlog)],
        )
    metric("inspect_parts_per_second", "gauge", "Throughput so far.", [(line_l, snap.parts_per_s)])
    metric("inspect_uptime_seconds", "gauge", "Seconds since start.", [(line_l, snap.uptime_s)])
    return "\n".join(out) + "\n"


def prometheus_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)
