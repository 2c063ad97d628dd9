"""The pipeline with fakes (in-memory source, fake backend, fake defect log): ordering, FAULT
rows for bad parts, back-pressure on a locked log, counted drops, graceful drain."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from inspect_app.backends.base import BackendResult
from inspect_app.decision import fault_cause
from inspect_app.pipeline import (
    DROPPED_FAULT,
    InspectedPart,
    Pipeline,
    PipelineConfig,
    input_problem,
)
from inspect_app.store import InspectionRecord, StoreUnavailable
from sensors.sample import Sample, VibrationWindow, same_values


@dataclass
class Card:
    classes: tuple[str, ...] = ("scratch", "dent")
    threshold: float = 0.5


class FakeBackend:
    """Scores a part by its label (defects 0.9, good 0.1); NaN for meta['nan_output']."""

    name = "fake"

    def __init__(self, delay_s: float = 0.0, fail_on: str | None = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.calls: list[int] = []

    def predict(self, inputs: list[Sample]) -> BackendResult:
        self.calls.append(len(inputs))
        time.sleep(self.delay_s)
        if any(s.part_id == self.fail_on for s in inputs):
            msg = "device lost"
            raise RuntimeError(msg)
        n = len(inputs)
        score = np.array([0.1 if s.label in (None, "ok") else 0.9 for s in inputs], np.float32)
        probs = np.array(
            [[1.0, 0.0] if s.label == "scratch" else [0.0, 1.0] for s in inputs], np.float32
        )
        heat = np.zeros((n, 4, 4), np.float32)
        heat[:, 1, 2] = 1.0
        for i, s in enumerate(inputs):
            if "nan_output" in s.meta:
                score[i] = np.nan
        return BackendResult(score, probs, heat, np.zeros(n, np.float32))

    def close(self) -> None:
        return None


def fake_preprocess(samples: list[Sample]) -> list[Sample]:
    for s in samples:
        if "bad_preprocess" in s.meta:
            msg = f"cannot prepare {s.part_id}"
            raise ValueError(msg)
    return samples


@dataclass
class FakeLog:
    """An in-memory defect log; raises StoreUnavailable for the first `unavailable` writes."""

    unavailable: int = 0
    records: list[InspectionRecord] = field(default_factory=list)
    attempts: int = 0

    def add_inspections(self, records: Sequence[InspectionRecord]) -> list[int]:
        self.attempts += 1
        if self.attempts <= self.unavailable:
            raise StoreUnavailable("sqlite:///fake.db", "locked", "database is locked")
        start = len(self.records)
        self.records.extend(records)
        return list(range(start, start + len(records)))


def part(i: int, label: str = "ok", **meta: str) -> Sample:
    frame = np.full((8, 8, 3), i % 255, np.uint8)
    frame[0, 0] ^= 1  # never one value: a uniform frame is a FAULT (a dark camera)
    # each part its own window: one that repeats the part's before is a frozen feed (a FAULT)
    vib = VibrationWindow(np.sin(np.arange(256, dtype=np.float32) * (1 + i / 1000)), 1000.0)
    return Sample(part_id=f"p{i:04d}", frame=frame, vibration=vib, label=label, meta=dict(meta))


def make(
    source: list[Sample],
    log: FakeLog | None = None,
    backend: FakeBackend | None = None,
    sinks: Sequence[Any] = (),
    snapshots: Any = None,
    watchers: Sequence[Any] = (),
    **config: object,
) -> tuple[Pipeline, FakeLog]:
    log = log or FakeLog()
    pipeline = Pipeline(
        source,
        fake_preprocess,
        backend or FakeBackend(),
        Card(),
        log,
        line="test-line",
        model_version="v1",
        sinks=sinks,
        watchers=watchers,
        snapshots=snapshots,
        config=PipelineConfig(**config),  # type: ignore[arg-type]
    )
    return pipeline, log


def test_every_part_is_logged_in_order_with_its_verdict() -> None:
    parts = [part(i, "scratch" if i % 3 == 0 else "ok") for i in range(50)]
    pipeline, log = make(parts, batch_size=4)
    outcome = pipeline.run()
    assert outcome.error is None and outcome.committed == 50
    assert [r.part_id for r in log.records] == [p.part_id for p in parts]
    fails = [r for r in log.records if r.verdict == "FAIL"]
    assert len(fails) == 17 and all(r.defect_class == "scratch" and r.box for r in fails)
    assert all(r.line == "test-line" and r.model_version == "v1" for r in log.records)
    assert all(r.timestamp.tzinfo is not None for r in log.records)
    snap = pipeline.stats.snapshot()
    assert snap.parts == 50 and snap.verdicts == {"PASS": 33, "FAIL": 17, "FAULT": 0}
    assert snap.fails_by_class == {"scratch": 17}
    assert snap.latency["model"].p95_ms is not None and snap.latency["total"].count == 50


def test_bad_parts_become_fault_rows_and_the_line_keeps_running() -> None:
    nan_vib = part(1)
    nan_vib.vibration = VibrationWindow(
        np.array([0.0, np.nan, 1.0], np.float32), 1000.0, source="x.npy"
    )
    parts = [
        part(0),
        nan_vib,
        Sample(part_id="p0002", label="ok", fault="cam/0002.png, row 4: not a PNG image"),
        part(3, bad_preprocess="1"),
        part(4, nan_output="1"),
        part(5, "dent"),
    ]
    pipeline, log = make(parts, batch_size=8)
    assert pipeline.run().committed == 6
    verdicts = {r.part_id: r for r in log.records}
    assert verdicts["p0000"].verdict == "PASS"
    assert verdicts["p0001"].verdict == "FAULT" and "x.npy" in str(verdicts["p0001"].fault_reason)
    assert verdicts["p0002"].verdict == "FAULT" and "row 4" in str(verdicts["p0002"].fault_reason)
    assert verdicts["p0003"].verdict == "FAULT" and "prepare" in str(verdicts["p0003"].fault_reason)
    assert verdicts["p0004"].verdict == "FAULT" and "NaN" in str(verdicts["p0004"].fault_reason)
    assert verdicts["p0005"].verdict == "FAIL" and verdicts["p0005"].defect_class == "dent"


def test_a_frozen_feed_is_a_fault_never_judged_on_the_old_reading() -> None:
    """A camera that stalls hands out its last frame again (the same buffer, or a copy of it);
    a DAQ its last window: the parts behind them were not seen. Each is a FAULT naming the
    part it repeats, and the line goes on as soon as the feed moves again."""
    parts = [part(i) for i in range(7)]
    parts[2].frame = parts[1].frame  # the driver's buffer handed out again
    assert parts[1].frame is not None
    parts[3].frame = parts[1].frame.copy()  # ... and once more, copied out of it
    parts[5].vibration = parts[4].vibration  # the DAQ re-reads its ring buffer
    parts[6].meta["source"] = "cam/0006.png"
    pipeline, log = make(parts, batch_size=8)
    assert pipeline.run().committed == 7
    rows = {r.part_id: r for r in log.records}
    assert [rows[f"p{i:04d}"].verdict for i in range(7)] == [
        "PASS", "PASS", "FAULT", "FAULT", "PASS", "FAULT", "PASS"
    ]  # fmt: skip
    assert rows["p0002"].fault_reason == (
        "part p0002: image identical, sample for sample, to part p0001's: the camera feed is "
        "frozen (a sensor or driver handing out its last reading again), or the same part was "
        "sent twice"
    )
    assert "image identical, sample for sample, to part p0002's" in str(rows["p0003"].fault_reason)
    assert "vibration window identical, sample for sample, to part p0004's: the vibration feed" in (
        str(rows["p0005"].fault_reason)
    )


def test_a_line_that_inspects_nothing_for_20_parts_is_unhealthy_until_it_inspects_again() -> None:
    """Every part of a frozen or covered camera is rejected (FAULT), so the line is safe, but
    it inspects nothing: /healthz says so (503) after 20 in a row, and recovers by itself."""
    from inspect_app.defaults import FAULT_RUN_UNHEALTHY
    from inspect_app.service import _health

    covered = [Sample(part_id=f"c{i}", fault=f"cam/{i}.png: image is uniform") for i in range(20)]
    pipeline, _ = make([part(0), *covered[:19]])
    pipeline.run()
    assert _health(pipeline) == (True, "idle") and pipeline.stats.snapshot().fault_run == 19
    pipeline, _ = make([part(0), *covered])
    pipeline.run()
    healthy, detail = _health(pipeline)
    assert not healthy and FAULT_RUN_UNHEALTHY == 20
    assert detail == (
        "the last 20 parts could not be inspected (FAULT, rejected); latest: "
        "cam/19.png: image is uniform"
    )
    pipeline, _ = make([*covered, part(1)])
    pipeline.run()
    assert _health(pipeline) == (True, "idle") and pipeline.stats.snapshot().fault_run == 0


def test_same_values_compares_every_sample_not_only_the_probe() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    b = a.copy()
    assert same_values(a, b)
    b[1, 1, 2] ^= 1  # off the 32 x 32 probe grid (every 15th row, every 20th column)
    assert not same_values(a, b)
    assert not same_values(a, a[:, :, :2]) and not same_values(a, a.astype(np.int16))
    window = rng.normal(size=1000).astype(np.float32)
    assert same_values(window, window.copy()) and not same_values(window, window + 1e-3)


def test_backend_error_faults_its_batch_only() -> None:
    parts = [part(i) for i in range(8)]
    pipeline, log = make(
        parts, backend=FakeBackend(fail_on="p0001"), batch_size=2, batch_wait_s=0.5
    )
    pipeline.run()
    faults = [r.part_id for r in log.records if r.verdict == "FAULT"]
    assert faults == ["p0000", "p0001"]
    assert "device lost" in str(log.records[0].fault_reason)
    assert [r.verdict for r in log.records[2:]] == ["PASS"] * 6


def test_locked_log_gets_backpressure_and_retries_then_commits() -> None:
    parts = [part(i) for i in range(20)]
    pipeline, log = make(parts, log=FakeLog(unavailable=3), store_retry_initial_s=0.01)
    outcome = pipeline.run()
    assert outcome.error is None and len(log.records) == 20
    assert pipeline.stats.snapshot().store_retries == 3
    assert pipeline.stats.snapshot().store_error is None


def test_log_unavailable_too_long_stops_with_a_clear_error() -> None:
    pipeline, log = make(
        [part(i) for i in range(200)],
        log=FakeLog(unavailable=10**6),
        store_retry_initial_s=0.01,
        store_retry_max_s=0.02,
        store_give_up_s=0.2,
        queue_size=4,
    )
    t0 = time.monotonic()
    outcome = pipeline.run()
    assert time.monotonic() - t0 < 10
    assert outcome.store_unavailable and "defect log unavailable" in str(outcome.error)
    assert "locked" in str(outcome.error)
    assert log.records == [] and outcome.parts < 200  # back-pressure: reading stopped early


def test_a_part_a_full_line_drops_is_a_fault_in_its_place_never_lost() -> None:
    """A live camera cannot wait: a part that finds the line full is not inspected. It is
    counted as dropped and still logged, as a FAULT naming why, in its place in the order (a
    gate that counts parts stays in step), with its frame let go."""
    signals: list[tuple[str, str]] = []

    class Gate:
        name = "gate"

        def handle(self, p: InspectedPart) -> None:
            signals.append((p.sample.part_id, p.verdict.verdict))

        def close(self) -> None:
            return None

    samples = [part(i, "dent" if i % 7 == 0 else "ok") for i in range(60)]
    pipeline, log = make(
        samples,
        backend=FakeBackend(delay_s=0.02),
        sinks=[Gate()],
        batch_size=1,
        queue_size=2,
        drop_when_full=True,
    )
    outcome = pipeline.run()
    snap = pipeline.stats.snapshot()
    dropped = sum(snap.drops.values())
    assert dropped > 0 and snap.drops["prepare"] == dropped
    assert outcome.parts == outcome.committed == 60
    assert [r.part_id for r in log.records] == [f"p{i:04d}" for i in range(60)]
    assert [pid for pid, _ in signals] == [f"p{i:04d}" for i in range(60)]
    faults = [r for r in log.records if r.verdict == "FAULT"]
    assert len(faults) == dropped
    assert all(r.fault_reason == DROPPED_FAULT for r in faults)
    assert all(samples[int(r.part_id[1:])].frame is None for r in faults)  # memory let go
    inspected = [r for r in log.records if r.verdict != "FAULT"]
    assert inspected and all(samples[int(r.part_id[1:])].frame is not None for r in inspected)


def test_stop_drains_what_was_read() -> None:
    def endless() -> Iterator[Sample]:
        i = 0
        while True:
            yield part(i)
            i += 1

    pipeline, log = make([], backend=FakeBackend(delay_s=0.005))
    pipeline.source = endless()
    pipeline.start()
    while pipeline.stats.snapshot().parts < 10:
        time.sleep(0.01)
    pipeline.stop()
    outcome = pipeline.join(timeout=10)
    assert not pipeline.running
    assert outcome.committed == outcome.parts == len(log.records) >= 10
    assert [r.part_id for r in log.records] == [f"p{i:04d}" for i in range(outcome.parts)]


def test_max_parts_and_batching() -> None:
    backend = FakeBackend(delay_s=0.01)
    pipeline, log = make([part(i) for i in range(40)], backend=backend, max_parts=25, batch_size=8)
    assert pipeline.run().committed == 25 and len(log.records) == 25
    assert max(backend.calls) > 1  # parts waiting behind a busy model are batched


def test_sinks_and_listeners_see_every_part() -> None:
    seen: list[str] = []
    committed: list[str] = []

    class Gate:
        name = "gate"

        def handle(self, p: InspectedPart) -> None:
            if p.sample.part_id == "p0002":
                msg = "gate jammed"
                raise OSError(msg)
            seen.append(p.verdict.verdict)

        def close(self) -> None:
            seen.append("closed")

    lock = threading.Lock()

    def listener(parts: list[InspectedPart]) -> None:
        with lock:
            committed.extend(p.sample.part_id for p in parts)

    log = FakeLog()
    pipeline = Pipeline(
        [part(i, "dent" if i == 1 else "ok") for i in range(4)],
        fake_preprocess,
        FakeBackend(),
        Card(),
        log,
        line="l",
        model_version="v1",
        sinks=[Gate()],
        on_committed=listener,
    )
    pipeline.run()
    assert seen == ["PASS", "FAIL", "PASS", "closed"]
    assert committed == ["p0000", "p0001", "p0002", "p0003"] and len(log.records) == 4
    assert pipeline.stats.snapshot().sink_errors == {"gate": 1}


def test_input_problem_names_the_part() -> None:
    assert input_problem(Sample(part_id="p9")) == "part p9: no image and no vibration"
    assert input_problem(part(1)) is None
    dead = part(2)
    dead.vibration = VibrationWindow(np.zeros(256, np.float32), 1000.0)
    assert input_problem(dead) == (
        "part p0002: vibration is flat (every sample 0): sensor, cable or amplifier disconnected?"
    )
    loud = part(4)
    t = np.arange(4000) / 4000.0
    rng = np.random.default_rng(0)
    signal = np.sin(2 * np.pi * 30 * t) + 0.2 * rng.standard_normal(t.size)
    loud.vibration = VibrationWindow(np.minimum(signal, 0.9).astype(np.float32), 4000.0)
    problem = input_problem(loud)
    assert problem is not None and problem.startswith("part p0004: vibration clipped (")
    assert "samples at 0.9 in" in problem and "overloaded" in problem
    assert fault_cause(problem) == "vibration sensor overloaded (clipped window)"
    dark = part(3)
    dark.frame = np.zeros((8, 8, 3), np.uint8)  # a driver's empty buffer, a covered lens
    assert input_problem(dark) == (
        "part p0003: image is uniform (every pixel 0): camera dark, covered or blinded, or an "
        "empty buffer?"
    )
    with pytest.raises(ValueError, match="max_parts"):
        PipelineConfig(max_parts=-1)


def frame(i: int) -> np.ndarray:
    """Part i's frame: never uniform (see `part`), never the frame before it (a frozen feed)."""
    out = np.zeros((4, 4, 3), np.uint8)
    out[0, 0], out[1, 1] = 1, i % 256
    return out


class ScoreBackend(FakeBackend):
    """Scores every part the same: a stand-in for a line model with its own threshold side."""

    def __init__(self, score: float) -> None:
        super().__init__()
        self.score = score

    def predict(self, inputs: list[Sample]) -> BackendResult:
        result = super().predict(inputs)
        return BackendResult(
            np.full(len(inputs), self.score, np.float32),
            result.class_probs,
            result.heatmap,
            result.anomaly_score,
        )


def started_on_v1(source: Iterator[Sample], log_store: FakeLog, batch: int, first: int) -> Pipeline:
    """A running pipeline whose model v1 passes every part, once `first` parts are logged."""
    pipeline = Pipeline(
        source,
        fake_preprocess,
        ScoreBackend(0.1),
        Card(),
        log_store,
        line="l",
        model_version="v1",
        config=PipelineConfig(batch_size=batch, queue_size=2 * batch),
    )
    pipeline.start()
    deadline = time.monotonic() + 10
    while len(log_store.records) < first and time.monotonic() < deadline:
        time.sleep(0.005)
    return pipeline


def test_a_model_swap_takes_effect_between_two_parts_with_the_source_left_open() -> None:
    """`swap_model`: parts read before the switch are decided by the old model, every later
    one by the new, each logged with its version; no part is lost or decided twice, and the
    source is never closed or reopened."""
    gate = threading.Event()
    opened = []

    def source() -> Iterator[Sample]:
        opened.append(True)
        for i in range(40):
            if i == 20:
                gate.wait(10)  # the line pauses here until the swap is asked for
            time.sleep(0.002)
            yield Sample(part_id=f"p{i:02d}", frame=frame(i), label="ok")

    log_store = FakeLog()
    pipeline = started_on_v1(source(), log_store, batch=4, first=20)
    new_preprocess_calls: list[int] = []

    def new_preprocess(samples: list[Sample]) -> list[Sample]:
        new_preprocess_calls.append(len(samples))
        return samples

    new_backend = ScoreBackend(0.9)
    done = pipeline.swap_model(new_preprocess, new_backend, Card(threshold=0.5), "v2")
    assert done.wait(5), "an idle line takes the swap too"
    gate.set()
    outcome = pipeline.join(timeout=10)
    assert outcome.error is None and outcome.committed == 40 and opened == [True]
    rows = log_store.records
    assert [r.part_id for r in rows] == [f"p{i:02d}" for i in range(40)]
    versions = [r.model_version for r in rows]
    assert versions == ["v1"] * 20 + ["v2"] * 20
    assert [r.verdict for r in rows] == ["PASS"] * 20 + ["FAIL"] * 20
    assert sum(new_backend.calls) == 20 and sum(new_preprocess_calls) == 20
    assert pipeline.model_version == "v2"


def test_a_swap_asked_for_mid_stream_splits_it_once() -> None:
    log_store = FakeLog()
    samples = [Sample(part_id=f"p{i:03d}", frame=frame(i), label="ok") for i in range(300)]

    def slow() -> Iterator[Sample]:
        for s in samples:
            time.sleep(0.003)
            yield s

    pipeline = started_on_v1(slow(), log_store, batch=8, first=8)
    done = pipeline.swap_model(fake_preprocess, ScoreBackend(0.9), Card(), "v2")
    outcome = pipeline.join(timeout=20)
    assert done.is_set() and outcome.committed == 300
    versions = [r.model_version for r in log_store.records]
    switch = versions.index("v2")
    assert 0 < switch < 300 and versions == ["v1"] * switch + ["v2"] * (300 - switch)
    verdicts = [r.verdict for r in log_store.records]
    assert verdicts == ["PASS"] * switch + ["FAIL"] * (300 - switch)


class SlowSnapshots:
    """A snapshot writer that takes `delay_s` per part (a 5 MP JPEG); fails on `fail_on`."""

    def __init__(self, delay_s: float, fail_on: str | None = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.active = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def save(self, p: InspectedPart) -> str | None:
        with self._lock:
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
        try:
            time.sleep(self.delay_s)
            if p.sample.part_id == self.fail_on:
                msg = "disk full"
                raise OSError(msg)
            return f"snapshots/{p.sample.part_id}.jpg"
        finally:
            with self._lock:
                self.active -= 1


def burst_pipeline(
    snapshots: SlowSnapshots, signals: list[float], workers: int, n: int = 8
) -> tuple[Pipeline, FakeLog]:
    class Clock:
        name = "clock"

        def handle(self, p: InspectedPart) -> None:
            signals.append(time.monotonic())

        def close(self) -> None:
            return None

    source = [part(i, "dent") for i in range(n)]
    return make(source, sinks=[Clock()], snapshots=snapshots, snapshot_workers=workers)


def test_the_reject_signal_does_not_wait_for_snapshots() -> None:
    """A burst of FAIL parts whose snapshots are slow: every reject signal goes out at once,
    while the log stage is still writing the first snapshots."""
    signals: list[float] = []
    snapshots = SlowSnapshots(delay_s=0.25)
    pipeline, log = burst_pipeline(snapshots, signals, workers=1)
    t0 = time.monotonic()
    assert pipeline.run().error is None
    took = time.monotonic() - t0
    assert took >= 8 * 0.25  # one snapshot at a time
    assert len(signals) == 8 and max(signals) - t0 < 0.25 * 4  # not behind the snapshots
    assert [r.snapshot_path for r in log.records] == [f"snapshots/p{i:04d}.jpg" for i in range(8)]
    assert pipeline.stats.snapshot().latency["signal"].p50_ms is not None


def test_a_batch_of_snapshots_is_written_on_several_threads() -> None:
    signals: list[float] = []
    snapshots = SlowSnapshots(delay_s=0.25, fail_on="p0003")
    pipeline, log = burst_pipeline(snapshots, signals, workers=4)
    t0 = time.monotonic()
    assert pipeline.run().error is None
    assert time.monotonic() - t0 < 8 * 0.25 * 0.75  # sequential would take 2 s or more
    assert snapshots.most_at_once > 1
    paths = [r.snapshot_path for r in log.records]
    assert len(paths) == 8 and paths[3] is None  # its row is committed without a snapshot
    assert paths[:3] + paths[4:] == [f"snapshots/p{i:04d}.jpg" for i in (0, 1, 2, 4, 5, 6, 7)]
    assert pipeline.stats.snapshot().sink_errors == {"snapshots": 1}
    with pytest.raises(ValueError, match="snapshot_workers must be at least 1"):
        PipelineConfig(snapshot_workers=0)


def test_watchers_see_every_part_in_the_log_stage_before_its_row() -> None:
    """A watcher (the drift watch) is off the reject signal's path: it sees each part in the log
    stage, before the part's row is committed (so a reference it reads from the log never holds
    the parts it is being handed); a watcher that fails is counted and the line goes on."""
    log = FakeLog()
    seen: list[tuple[str, int]] = []

    class Watcher:
        name = "watch"

        def handle(self, p: InspectedPart) -> None:
            seen.append((p.sample.part_id, len(log.records)))
            if p.sample.part_id == "p0003":
                msg = "cannot read the log"
                raise RuntimeError(msg)

        def close(self) -> None:
            seen.append(("closed", -1))

    pipeline, _ = make([part(i) for i in range(6)], log=log, watchers=[Watcher()])
    assert pipeline.run().committed == 6
    assert [pid for pid, _ in seen] == [f"p{i:04d}" for i in range(6)] + ["closed"]
    assert all(committed <= int(pid[1:]) for pid, committed in seen[:-1])  # not yet logged
    assert pipeline.stats.snapshot().sink_errors == {"watch": 1}


def test_a_passed_part_picked_for_a_check_keeps_its_snapshot() -> None:
    """`serve --audit-every 4`: the passed parts it picks are logged with a snapshot for the
    operator to look at, the other passed parts without one."""
    from inspect_app.sinks import AuditSampler

    source = [part(i) for i in range(40)]
    sampler = AuditSampler(4, seed=0)
    pipeline, log = make(source, sinks=[sampler], snapshots=SlowSnapshots(delay_s=0.0))
    assert pipeline.run().error is None
    assert {r.verdict for r in log.records} == {"PASS"}
    kept = [r.part_id for r in log.records if r.snapshot_path is not None]
    assert 0 < len(kept) == sampler.picked < 40
    assert pipeline.stats.snapshot().audits == len(kept)  # counted for /metrics and serve
