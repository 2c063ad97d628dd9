"""The inspection pipeline: source → preprocess → backend → decision → sinks.

Five worker threads joined by bounded queues:

    source ─q:prepare─▶ preprocess ─q:model─▶ backend + decision ─q:signal─▶ reject sinks
                                                          ─q:log─▶ snapshots, defect log

* The reject signal (the sinks: a command, a Modbus coil, the alarm) has a thread of its own:
  a part's signal goes out as soon as it is decided and never waits for the snapshots or the
  database, which are slow exactly when many parts are rejected (a burst of FAIL parts at
  5 MP: a JPEG each). The log stage writes a batch's snapshots on a few threads
  (`snapshot_workers`), then commits its rows.

* A replayed dataset blocks when the line is full (back-pressure, nothing lost); a live source
  (`drop_when_full`) cannot wait, so a part that finds the line full is not inspected: its
  frame and vibration are let go, the drop is counted, and the part goes on as a FAULT (its
  reject signal and its row, in its place in the order) as soon as the queue has room.
* A part that could not be inspected — `fault` set by the sensors, NaN samples, a preprocess or
  backend error, a non-finite model output — becomes a FAULT row, never PASS, and the pipeline
  keeps running. So does a part whose frame or vibration window is identical, sample for
  sample, to the part's before it (`RepeatWatch`): a camera or DAQ that stopped updating hands
  out its last buffer again, and that part was never seen.
* The defect log is written in batches, one transaction each. When the store raises
  `StoreUnavailable` (locked or full database) the writer retries with capped exponential backoff;
  the queues fill and the source waits (back-pressure). After `store_give_up_s` the pipeline stops
  with a clear error instead of spinning.
* `stop()` ends reading; everything already read is inspected, committed, and then `run()`
  returns (graceful drain).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from inspect_app.align import heatmaps_to_frames
from inspect_app.backends.base import Backend, BackendResult
from inspect_app.decision import DecisionCard, Verdict, decide_batch, fault
from inspect_app.runtime import RuntimeStats
from inspect_app.store import InspectionRecord, StoreUnavailable
from sensors.sample import Sample, same_values
from sensors.vibration import clipping

log = logging.getLogger(__name__)

_END = object()
"""Passed down the queues after the last part: each stage drains, forwards it and exits."""

DROPPED_FAULT = (
    "not inspected: the inspection fell behind the camera and this part was dropped (the "
    "line's queue was full)"
)
"""Why a live source's part that a full line could not take is a FAULT."""


@dataclass(frozen=True)
class PipelineConfig:
    """How the pipeline batches, buffers and retries."""

    batch_size: int = 8  # parts per model call: amortizes per-call overhead on a CPU
    batch_wait_s: float = 0.005  # how long a partial batch waits for more parts
    queue_size: int = 32  # capacity of each queue between stages
    drop_when_full: bool = False  # live camera: drop when full; replay: wait
    log_batch: int = 64  # rows per defect-log transaction at most
    log_wait_s: float = 0.05  # how long a partial log batch waits for more rows
    store_retry_initial_s: float = 0.2
    store_retry_max_s: float = 5.0
    store_give_up_s: float = 120.0  # stop with an error after the store is unavailable this long
    max_parts: int | None = None  # stop after this many parts read from the source
    # threads writing a log batch's snapshots (JPEG encoding releases the GIL); 1: in the log
    # thread itself
    snapshot_workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))

    def __post_init__(self) -> None:
        for name in ("batch_size", "queue_size", "log_batch", "snapshot_workers"):
            if getattr(self, name) < 1:
                msg = f"PipelineConfig.{name} must be at least 1, got {getattr(self, name)}"
                raise ValueError(msg)
        if self.max_parts is not None and self.max_parts < 0:
            msg = f"max_parts must be 0 or more, got {self.max_parts}"
            raise ValueError(msg)


class InspectionLog(Protocol):
    """Where inspection rows go: `inspect_app.store.DefectStore` in the product."""

    def add_inspections(self, records: Sequence[InspectionRecord]) -> list[int]: ...


class RejectSink(Protocol):
    """Something that acts on each verdict at the line (reject gate, PLC coil, a hook)."""

    name: str

    def handle(self, part: InspectedPart) -> None: ...

    def close(self) -> None: ...


class SnapshotWriter(Protocol):
    """Saves evidence of a rejected part and returns where (see `inspect_app.snapshots`)."""

    def save(self, part: InspectedPart) -> str | None: ...


@dataclass
class InspectedPart:
    """A part with its verdict, on its way to the sinks. `heatmap` is kept for FAIL parts only."""

    sample: Sample
    verdict: Verdict
    heatmap: np.ndarray | None = None
    read_at: float = 0.0  # monotonic time the source finished reading it
    latency_ms: float | None = None  # source read start → decision
    snapshot_path: str | None = None
    model_version: str = ""  # the line model version that decided it ("" before the model)
    # a passed part picked for an operator's check (`sinks.AuditSampler`): its snapshot is kept
    audit: bool = False


@dataclass
class _Batch:
    samples: list[Sample]
    read_at: list[float]
    inputs: Any = None
    faults: dict[int, str] = field(default_factory=dict)  # index in batch → reason
    started: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Swap:
    """Another line model, handed down the pipeline between two batches (`swap_model`)."""

    preprocess: Callable[[list[Sample]], Any]
    backend: Backend
    card: DecisionCard
    model_version: str
    done: threading.Event


# how often an idle preprocess stage looks for a model swap
SWAP_POLL_S = 0.1


@dataclass(frozen=True)
class PipelineOutcome:
    """How a run ended. `error` is set when the pipeline stopped on a failure (store gone)."""

    parts: int
    committed: int
    error: str | None = None
    store_unavailable: bool = False  # the error is a database that stayed locked / full


class Pipeline:
    """One line's inspection pipeline. Build it, then `run()` (blocking) or `start()` + `join()`."""

    def __init__(
        self,
        source: Iterable[Sample],
        preprocess: Callable[[list[Sample]], Any],
        backend: Backend,
        card: DecisionCard,
        log_store: InspectionLog,
        *,
        line: str,
        model_version: str,
        sinks: Sequence[RejectSink] = (),
        watchers: Sequence[RejectSink] = (),
        snapshots: SnapshotWriter | None = None,
        config: PipelineConfig | None = None,
        stats: RuntimeStats | None = None,
        on_committed: Callable[[list[InspectedPart]], None] | None = None,
    ) -> None:
        self.source = source
        self.preprocess = preprocess
        self.backend = backend
        self.card = card
        self.store = log_store
        self.line = line
        self.model_version = model_version
        self.sinks = list(sinks)
        # see every part in the log stage, just before its row is committed, off the reject
        # signal's path (the drift watch: it may read the log, and nothing waits for it)
        self.watchers = list(watchers)
        self.snapshots = snapshots
        self.config = config or PipelineConfig()
        self.stats = stats or RuntimeStats()
        self.on_committed = on_committed
        size = self.config.queue_size
        self._q_prepare: queue.Queue[Any] = queue.Queue(size)
        self._q_model: queue.Queue[Any] = queue.Queue(max(2, size // self.config.batch_size))
        self._q_signal: queue.Queue[Any] = queue.Queue(size)
        self._q_log: queue.Queue[Any] = queue.Queue(size)
        for name, q in (
            ("prepare", self._q_prepare),
            ("model", self._q_model),
            ("signal", self._q_signal),
            ("log", self._q_log),
        ):
            self.stats.watch_queue(name, q.qsize, q.maxsize)
        backlog = getattr(source, "backlog", None)  # a hot folder counts its unread parts
        if callable(backlog):
            self.stats.watch_backlog(backlog)
        self._stopping = threading.Event()  # stop reading, drain the rest
        self._abort = threading.Event()  # a stage failed: every stage leaves now
        self._threads: list[threading.Thread] = []
        self._error: str | None = None
        self._store_unavailable = False
        self._parts_read = 0
        self._committed = 0
        self._swap_lock = threading.Lock()
        self._pending_swap: _Swap | None = None

    # -- control ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the stage threads."""
        if self._threads:
            msg = "this pipeline was already started; build a new one to run again"
            raise RuntimeError(msg)
        stages = (
            ("source", self._run_source),
            ("preprocess", self._run_preprocess),
            ("model", self._run_model),
            ("signal", self._run_signal),
            ("log", self._run_log),
        )
        for name, target in stages:
            t = threading.Thread(target=self._guarded(name, target), name=f"pipeline-{name}")
            t.daemon = True
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        """Stop reading new parts; parts already read are inspected and committed."""
        self._stopping.set()
        self._wake_source()

    def _wake_source(self) -> None:
        """A source that waits for parts (a hot folder) has a `stop()`: end its wait too."""
        wake = getattr(self.source, "stop", None)
        if callable(wake):
            wake()

    def swap_model(
        self,
        preprocess: Callable[[list[Sample]], Any],
        backend: Backend,
        card: DecisionCard,
        model_version: str,
    ) -> threading.Event:
        """Inspect with another line model from the next batch prepared on, without stopping
        the source: parts already prepared finish on the current model, every later part on
        the new one, each logged with the version that decided it. The model must read the
        source's samples as the current one does (the same frames and sensors). Returns an
        event set once the model stage has switched: the old backend is then free to close.
        A swap asked for before the previous one was taken replaces it."""
        swap = _Swap(preprocess, backend, card, model_version, threading.Event())
        with self._swap_lock:
            self._pending_swap = swap
        return swap.done

    def _take_swap(self) -> bool:
        """In the preprocess stage: switch to a pending model and pass it down (False when
        the pipeline is aborting)."""
        with self._swap_lock:
            swap, self._pending_swap = self._pending_swap, None
        if swap is None:
            return True
        self.preprocess = swap.preprocess
        return self._put(self._q_model, swap)

    def join(self, timeout: float | None = None) -> PipelineOutcome:
        """Wait for the drain to finish and say how it went."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        for sink in [*self.sinks, *self.watchers]:
            try:
                sink.close()
            except Exception as exc:  # a sink that fails to close must not hide the outcome
                log.warning("reject sink %s failed to close: %s", sink.name, exc)
        return PipelineOutcome(
            self._parts_read, self._committed, self._error, self._store_unavailable
        )

    def run(self) -> PipelineOutcome:
        """Start, then wait until the source ends or `stop()` is called and the queues drain."""
        self.start()
        return self.join()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def error(self) -> str | None:
        return self._error

    def _guarded(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:
                log.exception("pipeline stage %s failed", name)
                self._fail(f"pipeline stage {name} failed: {type(exc).__name__}: {exc}")

        return run

    def _fail(self, error: str) -> None:
        if self._error is None:
            self._error = error
        self._stopping.set()
        self._abort.set()
        self._wake_source()

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        """Blocking put that gives up only when the pipeline aborts."""
        while not self._abort.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any], timeout: float | None = None) -> Any:
        """Blocking get (or until `timeout`: raises queue.Empty) that leaves on abort."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._abort.is_set():
            wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if wait <= 0:
                raise queue.Empty
            try:
                return q.get(timeout=wait)
            except queue.Empty:
                continue
        return _END

    # -- stages ----------------------------------------------------------------------------

    def _run_source(self) -> None:
        limit = self.config.max_parts
        iterator = iter(self.source)
        dropped: deque[Any] = deque()  # parts a full line could not take yet (FAULT, in order)
        repeats = RepeatWatch()
        try:
            while not self._stopping.is_set() and (limit is None or self._parts_read < limit):
                t0 = time.monotonic()
                try:
                    sample = next(iterator)
                except StopIteration:
                    break
                read_at = time.monotonic()
                t0 += float(getattr(self.source, "last_wait_s", 0.0))  # a hot folder's idle time
                self.stats.record_part_started()
                self.stats.record_latency("source", read_at - t0)
                repeated = repeats.check(sample)  # every part, so the next compares with it
                problem = input_problem(sample) or repeated
                if problem is not None and sample.fault is None:
                    sample.fault = problem
                item = (sample, t0, read_at)
                if self.config.drop_when_full:
                    self._offer(item, dropped)  # queued, or kept to follow as a FAULT
                elif not self._put(self._q_prepare, item):
                    return  # aborted: the part never entered the line and is not counted
                self._parts_read += 1
        finally:
            close = getattr(iterator, "close", None)
            if callable(close):
                close()
            for item in dropped:  # the line has ended: the dropped parts' rows, in order
                if not self._put(self._q_prepare, item):
                    break
            self._put(self._q_prepare, _END)

    def _offer(self, item: tuple[Sample, float, float], dropped: deque[Any]) -> None:
        """A live source's part into a full line: not inspected, but never lost. Its frame and
        vibration are let go and it goes on as a FAULT (a reject signal and a row, in its place
        in the order) once the queue has room; the parts dropped before it go first."""
        while dropped:
            try:
                self._q_prepare.put_nowait(dropped[0])
            except queue.Full:
                break
            dropped.popleft()
        if not dropped:
            try:
                self._q_prepare.put_nowait(item)
                return
            except queue.Full:
                pass
        sample = item[0]
        self.stats.record_drop("prepare")
        if sample.fault is None:
            sample.fault = DROPPED_FAULT
        sample.frame, sample.vibration = None, None
        dropped.append(item)

    def _run_preprocess(self) -> None:
        ended = False
        while not ended:
            if not self._take_swap():
                return
            try:  # an idle line still takes a model swap
                first = self._get(self._q_prepare, SWAP_POLL_S)
            except queue.Empty:
                continue
            if first is _END:
                break
            items = [first]
            deadline = time.monotonic() + self.config.batch_wait_s
            while len(items) < self.config.batch_size:
                try:
                    item = self._get(self._q_prepare, max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _END:
                    ended = True
                    break
                items.append(item)
            batch = _Batch(
                samples=[s for s, _, _ in items],
                read_at=[r for _, _, r in items],
                started=[t0 for _, t0, _ in items],
            )
            self._prepare(batch)
            if not self._put(self._q_model, batch):
                return
        self._put(self._q_model, _END)

    def _prepare(self, batch: _Batch) -> None:
        t0 = time.monotonic()
        for i, sample in enumerate(batch.samples):
            if sample.fault is not None:
                batch.faults[i] = sample.fault
        good = [i for i in range(len(batch.samples)) if i not in batch.faults]
        if good:
            try:
                batch.inputs = self.preprocess([batch.samples[i] for i in good])
            except Exception:
                # One bad part must not fault its neighbours: find it by preparing one by one.
                good = self._isolate_preprocess_faults(batch, good)
                try:
                    batch.inputs = (
                        self.preprocess([batch.samples[i] for i in good]) if good else None
                    )
                except Exception as exc:
                    for i in good:
                        batch.faults[i] = f"preprocess failed: {type(exc).__name__}: {exc}"
                    batch.inputs = None
        batch.faults = dict(sorted(batch.faults.items()))
        elapsed = time.monotonic() - t0
        for _ in batch.samples:
            self.stats.record_latency("preprocess", elapsed)

    def _isolate_preprocess_faults(self, batch: _Batch, indices: list[int]) -> list[int]:
        good = []
        for i in indices:
            try:
                self.preprocess([batch.samples[i]])
                good.append(i)
            except Exception as exc:
                batch.faults[i] = f"preprocess failed: {type(exc).__name__}: {exc}"
        return good

    def _run_model(self) -> None:
        while True:
            batch = self._get(self._q_model)
            if batch is _END:
                break
            if isinstance(batch, _Swap):  # every batch from here on was prepared for it
                self.backend, self.card = batch.backend, batch.card
                self.model_version = batch.model_version
                batch.done.set()
                continue
            for part in self._inspect(batch):
                if not self._put(self._q_signal, part):
                    return
        self._put(self._q_signal, _END)

    def _run_signal(self) -> None:
        """Each part to the reject sinks the moment it is decided, then on to the log."""
        while True:
            part = self._get(self._q_signal)
            if part is _END:
                break
            for sink in self.sinks:
                self._hand(sink, part, "reject sink")
            self.stats.record_latency("signal", time.monotonic() - part.read_at)
            if not self._put(self._q_log, part):
                return
        self._put(self._q_log, _END)

    def _inspect(self, batch: _Batch) -> list[InspectedPart]:
        n = len(batch.samples)
        good = [i for i in range(n) if i not in batch.faults]
        verdicts: dict[int, Verdict] = {i: fault(r) for i, r in batch.faults.items()}
        heatmaps: dict[int, np.ndarray] = {}
        if good and batch.inputs is not None:
            t0 = time.monotonic()
            result: BackendResult | None = None
            try:
                result = self.backend.predict(batch.inputs)
                if len(result) != len(good):
                    msg = f"backend returned {len(result)} results for {len(good)} parts"
                    raise ValueError(msg)
            except Exception as exc:
                reason = f"backend {self.backend.name} failed: {type(exc).__name__}: {exc}"
                log.warning("%s", reason)
                for i in good:
                    verdicts[i] = fault(reason)
                result = None
            t1 = time.monotonic()
            if result is not None:
                warps = getattr(batch.inputs, "frame_warps", None)
                image = getattr(batch.inputs, "image", None)
                if warps and image is not None:  # registered frames' heat-maps, put back
                    heat = heatmaps_to_frames(result.heatmap, warps, int(image.shape[-1]))
                    result = dataclasses.replace(result, heatmap=heat)
                for i, v in zip(good, decide_batch(result, self.card), strict=True):
                    verdicts[i] = v
                for k, i in enumerate(good):
                    if verdicts[i].verdict == "FAIL":
                        heatmaps[i] = np.array(result.heatmap[k], copy=True)
            t2 = time.monotonic()
            for _ in good:
                self.stats.record_latency("model", t1 - t0)
                self.stats.record_latency("decision", t2 - t1)
        now = time.monotonic()
        return [
            InspectedPart(
                sample=batch.samples[i],
                verdict=verdicts[i],
                heatmap=heatmaps.get(i),
                read_at=batch.read_at[i],
                latency_ms=(now - batch.started[i]) * 1000.0,
                model_version=self.model_version,
            )
            for i in range(n)
        ]

    def _run_log(self) -> None:
        workers = self.config.snapshot_workers
        pool = None
        if self.snapshots is not None and workers > 1:
            pool = ThreadPoolExecutor(workers, thread_name_prefix="pipeline-snapshot")
        try:
            self._log_batches(pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _log_batches(self, pool: ThreadPoolExecutor | None) -> None:
        ended = False
        while not ended:
            first = self._get(self._q_log)
            if first is _END:
                break
            parts = [first]
            deadline = time.monotonic() + self.config.log_wait_s
            while len(parts) < self.config.log_batch:
                try:
                    item = self._get(self._q_log, max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _END:
                    ended = True
                    break
                parts.append(item)
            if not self._deliver(parts, pool):
                return

    def _deliver(self, parts: list[InspectedPart], pool: ThreadPoolExecutor | None) -> bool:
        t0 = time.monotonic()
        self._save_snapshots([p for p in parts if p.verdict.rejected or p.audit], pool)
        for watcher in self.watchers:  # before the commit: the log holds none of these yet
            for part in parts:
                self._hand(watcher, part, "watcher")
        records = [self.record(p) for p in parts]
        if not self._commit(records):
            return False
        done = time.monotonic()
        self._committed += len(parts)
        for part in parts:
            self.stats.record_latency("log", done - t0)
            self.stats.record_latency("total", done - part.read_at)
            v = part.verdict
            self.stats.record_verdict(v.verdict, v.defect_class, v.fault_reason, part.audit)
        if self.on_committed is not None:
            self.on_committed(parts)
        return True

    def _hand(self, sink: RejectSink, part: InspectedPart, kind: str) -> None:
        """`sink.handle(part)`; an error is counted and logged, never stops the line."""
        try:
            sink.handle(part)
        except Exception as exc:
            self.stats.record_sink_error(sink.name)
            log.warning("%s %s failed on part %s: %s", kind, sink.name, part.sample.part_id, exc)

    def _save_snapshots(self, parts: list[InspectedPart], pool: ThreadPoolExecutor | None) -> None:
        """Each rejected part's snapshot, on the pool's threads when there is one; a snapshot
        that fails is counted and logged, its row committed without it."""
        snapshots = self.snapshots
        if snapshots is None:
            return
        if pool is None or len(parts) < 2:
            saved: list[Future[str | None] | None] = [None] * len(parts)
        else:
            saved = [pool.submit(snapshots.save, part) for part in parts]
        for part, future in zip(parts, saved, strict=True):
            try:
                part.snapshot_path = snapshots.save(part) if future is None else future.result()
            except Exception as exc:
                self.stats.record_sink_error("snapshots")
                log.warning("snapshot of part %s failed: %s", part.sample.part_id, exc)

    def _commit(self, records: list[InspectionRecord]) -> bool:
        """Write one transaction, retrying a locked/full database with capped backoff."""
        delay = self.config.store_retry_initial_s
        first_failure: float | None = None
        while True:
            try:
                self.store.add_inspections(records)
                self.stats.record_store_ok()
                return True
            except StoreUnavailable as exc:
                now = time.monotonic()
                first_failure = first_failure or now
                waited = now - first_failure
                self.stats.record_store_retry(str(exc))
                if waited >= self.config.store_give_up_s:
                    self._store_unavailable = True
                    self._fail(
                        f"defect log unavailable for {waited:.0f} s, giving up with "
                        f"{len(records)} inspections not committed: {exc}"
                    )
                    return False
                log.error(
                    "defect log unavailable (%s); holding the line and retrying in %.1f s",
                    exc,
                    delay,
                )
                if self._abort.wait(delay):
                    return False
                delay = min(delay * 2, self.config.store_retry_max_s)

    def record(self, part: InspectedPart) -> InspectionRecord:
        """The defect-log row for an inspected part."""
        v = part.verdict
        return InspectionRecord(
            line=self.line,
            model_version=part.model_version or self.model_version,
            part_id=part.sample.part_id,
            timestamp=datetime.now(timezone.utc),
            verdict=v.verdict,
            defect_class=v.defect_class,
            defect_score=v.defect_score,
            anomaly_score=v.anomaly_score,
            class_probs=dict(v.class_probs),
            fault_reason=v.fault_reason,
            latency_ms=part.latency_ms,
            box=v.box,
            snapshot_path=part.snapshot_path,
            label=part.sample.label,
        )


class RepeatWatch:
    """Finds a part whose camera frame or vibration window is identical, sample for sample, to
    the previous part's.

    A live sensor is never exactly still: a camera's pixels carry noise and each part on a line
    is another part, an accelerometer's window is never the one before. A frame that repeats
    the last one bit for bit is a feed that stopped updating (a network camera or driver
    handing out its last buffer after the sensor stalled, a DAQ re-reading its ring buffer) or
    the same file sent twice; either way the part in front of the sensor was not seen, so it is
    a FAULT, never judged on the old reading. Each reading is compared with the last one of its
    kind (parts without it are skipped over): 32 × 32 probes first, so a live feed costs
    microseconds, the whole array only when those all agree.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[np.ndarray, str]] = {}

    def check(self, sample: Sample) -> str | None:
        """Why `sample` repeats the previous reading (None when it does not); remembers it."""
        where = sample.meta.get("source") or f"part {sample.part_id}"
        readings = {
            "image": sample.frame,
            "vibration window": None if sample.vibration is None else sample.vibration.samples,
        }
        problems = []
        for kind, values in readings.items():
            if values is None or values.size == 0:
                continue
            last = self._last.get(kind)
            if last is not None and same_values(values, last[0]):
                problems.append(
                    f"{where}: {kind} identical, sample for sample, to part {last[1]}'s: the "
                    f"{'camera' if kind == 'image' else 'vibration'} feed is frozen (a sensor "
                    "or driver handing out its last reading again), or the same part was sent "
                    "twice"
                )
            self._last[kind] = (values, sample.part_id)
        return "; ".join(problems) or None


def input_problem(sample: Sample) -> str | None:
    """Why a part cannot be inspected as it stands (None when it can)."""
    where = sample.meta.get("source") or f"part {sample.part_id}"
    if sample.frame is None and sample.vibration is None:
        return f"{where}: no image and no vibration"
    if sample.frame is not None:
        if sample.frame.size == 0:
            return f"{where}: empty image"
        if sample.frame.dtype.kind == "f" and not np.isfinite(sample.frame).all():
            return f"{where}: image has NaN or infinite pixels"
        if sample.frame.size > 1 and float(np.ptp(sample.frame)) == 0.0:
            # a camera's sensor always has some noise: a frame of one value is a dark, covered
            # or blinded camera, or a driver's empty buffer after a timeout
            return (
                f"{where}: image is uniform (every pixel {float(sample.frame.flat[0]):g}): "
                "camera dark, covered or blinded, or an empty buffer?"
            )
    if sample.vibration is not None:
        samples = sample.vibration.samples
        vib_where = sample.vibration.source or where
        if samples.size == 0:
            return f"{vib_where}: empty vibration window"
        if not np.isfinite(samples).all():
            bad = int((~np.isfinite(samples)).sum())
            return f"{vib_where}: vibration has {bad} NaN or infinite samples"
        if samples.size > 1 and float(np.ptp(samples)) == 0.0:
            # a live accelerometer is never exactly still: a disconnected sensor, cable or
            # amplifier (judged as a part, it would be a FAIL with a made-up defect class)
            return (
                f"{vib_where}: vibration is flat (every sample {float(samples.flat[0]):g}): "
                "sensor, cable or amplifier disconnected?"
            )
        clipped = clipping(samples)
        if clipped is not None:
            # the peaks the part's vibration made are cut off, and the cut itself draws lines
            # into the spectrum: judged as a part, the reading would fail or pass it by chance
            return (
                f"{vib_where}: vibration clipped ({clipped.samples} samples at {clipped.rail:g} "
                f"in {clipped.peaks} separate peaks): the sensor, its amplifier or the input "
                "range is overloaded; lower the gain or widen the range"
            )
    return None
