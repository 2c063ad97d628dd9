"""The console's workers: the line (pipeline) and the defect log, each on its own QThread.

The window never calls the model or the database. It sends requests as signals (queued onto the
worker threads) and draws what comes back as signals (queued onto the GUI thread):

* `LineWorker` owns the inspection pipeline — the same `inspect_app.pipeline.Pipeline` the
  headless service runs — and turns each committed batch into a `PartView` (frame with heat-map,
  spectrum) off the GUI thread. It polls the pipeline's `RuntimeStats` for the counters and the
  source for its health. A line switch loads the new model while the old one keeps inspecting,
  then drains the old pipeline and starts one for the new line: the next part read is inspected
  and logged by the new line's model.
* `LogWorker` reads pages of the defect log, saves operator overrides, loads snapshots and writes
  reports (with `inspect_app.report`, the `report` command's code).
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PyQt6.QtCore import QObject, QTimer, pyqtSignal, pyqtSlot

from inspect_app.drift import DriftMonitor, DriftSettings
from inspect_app.lines import current_active_version, enclosed_roi, line_window_s
from inspect_app.pipeline import InspectedPart, Pipeline, PipelineConfig
from inspect_app.report import ReportQuery, write_report
from inspect_app.service import LoadedLine
from inspect_app.sinks import AuditSampler
from inspect_app.snapshots import (
    RetentionPolicy,
    SnapshotStore,
    find_snapshot,
    overlay,
    snapshot_dir_for,
)
from inspect_app.sources import (
    CameraLine,
    DatasetReplay,
    HotFolder,
    check_sensors,
    open_source,
)
from inspect_app.store import DefectStore, InspectionRecord, InspectionRow
from sensors.camera import FrameFormat
from sensors.sample import Sample
from sensors.spectrum import welch_psd
from ui.view_state import (
    CounterView,
    FrameGeometry,
    LogPage,
    LogQuery,
    OverrideOutcome,
    OverrideRequest,
    PartView,
    SourceHealth,
)

log = logging.getLogger(__name__)

SNAPSHOT_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
# the console draws a frame in a window of at most a screen: a camera's megapixels are reduced
# to this longest side first (the overlay and the GUI's copy and scaling cost per pixel)
DISPLAY_MAX_SIDE = 1280
SPECTRUM_SEGMENT_S = 0.05  # Welch segment: 20 Hz resolution, smooth enough to read at a glance


WORKER_NICE = 5
"""How much lower than the window the workers run (Linux nice). Pipeline threads inherit it, so
when the window and the pipeline both wait for the CPU or the GIL, the window goes first."""


def lower_thread_priority(nice: int = WORKER_NICE) -> None:
    """Lower the calling thread's scheduling priority (Linux; a no-op elsewhere)."""
    if sys.platform != "linux":
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except (AttributeError, OSError) as exc:  # a sandbox may refuse; the console still works
        log.info("could not lower the worker thread's priority: %s", exc)


def freeze_heap() -> None:
    """Keep the long-lived objects (torch, the model, Qt) out of future garbage collections.

    A full collection walks every tracked object with the GIL held; with a line model loaded
    that took 150-290 ms here and froze the window (benchmarks/console.py). Frozen objects are
    never scanned again, so collections only look at what the running line allocates.
    """
    gc.freeze()


@dataclass(frozen=True)
class LineRuntime:
    """A loaded line: its backend and card (`LoadedLine`) and how parts become model inputs."""

    loaded: LoadedLine
    preprocess: Callable[[list[Sample]], Any]


LineLoader = Callable[[str], LineRuntime]
"""Loads a line by name (the product loads HOME/lines/<line>; tests pass a fake backend)."""


def product_loader(
    home: Path, backend: str = "torch", threads: int | None = None, precision: str = "fp32"
) -> LineLoader:
    """The loader `inspect-app console` uses: the line's active model, `prepare_batch` inputs."""

    def load(line: str) -> LineRuntime:
        from inspect_app.preprocess import prepare_batch
        from inspect_app.service import load_line

        loaded = load_line(home, line, backend, threads, precision=precision)
        card = loaded.card

        def preprocess(samples: list[Sample]) -> Any:
            return prepare_batch(samples, card)

        return LineRuntime(loaded, preprocess)

    return load


@dataclass(frozen=True)
class ConsoleSettings:
    """How the line worker runs the pipeline (the `serve` defaults unless said otherwise)."""

    home: Path
    db_url: str
    vibration: str | None = None
    window_s: float | None = None
    watch: bool = False  # the source is a hot folder (inspect_app.sources.HotFolder)
    recursive: bool = False  # and its subfolders are watched too
    sample_rate_hz: float | None = None  # of a hot folder's .npy / .csv / .mat files
    batch_size: int = 8
    # Parts read ahead of the model. Small, so that a line switch reaches the next part soon:
    # parts already queued when the switch lands are finished by the old line (drained).
    queue_size: int = 16
    # Rows per defect-log transaction at most. Small: a commit holds the GIL in long Python
    # stretches (SQLAlchemy), and the window's event loop waits for it (benchmarks/console.py).
    log_batch: int = 8
    snapshots: bool = True
    stats_every_ms: int = 200
    # how often the line's active version on disk is compared with the one inspecting
    # (`inspect-app lines --activate` switches it; the operator chooses the line again to load it)
    active_check_s: float = 5.0
    # the line's defect scores watched for drift, as `serve` does (None: not watched)
    drift: DriftSettings | None = field(default_factory=DriftSettings)
    # one passed part in N picked for an operator's check, as `serve --audit-every` (None: none)
    audit_every: int | None = None


class RecordingLog:
    """The defect log as the pipeline sees it, remembering the ids of the newest rows.

    The pipeline only needs `add_inspections`; the console also needs each part's inspection id
    so that the part on screen can be overridden at once.
    """

    def __init__(self, store: DefectStore, keep: int = 4096) -> None:
        self.store = store
        self.keep = keep
        self._ids: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def add_inspections(self, records: Sequence[InspectionRecord]) -> list[int]:
        ids = self.store.add_inspections(records)
        with self._lock:
            for record, inspection_id in zip(records, ids, strict=True):
                self._ids[(record.line, record.part_id)] = inspection_id
            while len(self._ids) > self.keep:
                self._ids.popitem(last=False)
        return ids

    def id_of(self, line: str, part_id: str) -> int | None:
        with self._lock:
            return self._ids.get((line, part_id))


def spectrum_db(sample: Sample) -> tuple[np.ndarray, np.ndarray] | None:
    """The vibration window's Welch PSD in dB (frequencies in Hz), for the spectrum plot."""
    vib = sample.vibration
    if vib is None or vib.samples.size < 16:
        return None
    x = vib.samples.astype(np.float64)
    nperseg = int(min(x.size, max(16, round(SPECTRUM_SEGMENT_S * vib.sample_rate_hz))))
    freqs, psd = welch_psd((x - x.mean())[None, :], float(vib.sample_rate_hz), nperseg)
    return freqs, 10.0 * np.log10(np.maximum(psd[0], 1e-20))


def display_frame(frame: np.ndarray) -> np.ndarray:
    """The frame at most DISPLAY_MAX_SIDE pixels on its longest side (area-averaged), aspect
    kept; a smaller frame as it is. The defect box is in fractions of the frame: unchanged."""
    h, w = frame.shape[:2]
    scale = DISPLAY_MAX_SIDE / max(h, w)
    if scale >= 1:
        return frame
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def part_view(
    part: InspectedPart,
    line: str,
    version: str,
    threshold: float,
    inspection_id: int | None,
    roi: list[int] | None = None,
) -> PartView:
    """What the window draws for an inspected part (runs on a pipeline thread, not the GUI).
    `roi` is the line's region of interest ([x, y, w, h]): the frame was cropped to it."""
    v = part.verdict
    image = None
    geometry = None
    if part.sample.frame is not None:
        h, w = part.sample.frame.shape[:2]
        x0, y0 = (int(roi[0]), int(roi[1])) if roi else (0, 0)
        geometry = FrameGeometry(int(w), int(h), x0, y0)
        heat = part.heatmap if v.verdict == "FAIL" else None
        if heat is not None and float(heat.max()) > 0:
            heat = heat / float(heat.max())  # on screen: where, relative to this part's peak
        image = overlay(display_frame(part.sample.frame), heat, None)
    spectrum = spectrum_db(part.sample)
    return PartView(
        line=line,
        model_version=version,
        part_id=part.sample.part_id,
        verdict=v.verdict,
        defect_class=v.defect_class,
        defect_score=v.defect_score,
        threshold=threshold,
        fault_reason=v.fault_reason,
        inspection_id=inspection_id,
        image=image,
        box=v.box,
        spectrum_hz=None if spectrum is None else spectrum[0],
        spectrum_db=None if spectrum is None else spectrum[1],
        geometry=geometry,
    )


class LineWorker(QObject):
    """Runs one line's pipeline at a time; lives on its own QThread (see the module docstring)."""

    part_committed = pyqtSignal(object)  # PartView: the newest part of each committed batch
    parts_committed = pyqtSignal(int)  # how many parts were just committed to the log
    counters_changed = pyqtSignal(object)  # CounterView
    health_changed = pyqtSignal(object)  # SourceHealth
    line_changed = pyqtSignal(str, str, object)  # line, model version, its defect classes
    # line, and the region its adapt advised to crop to ([x, y, w, h], camera pixels) or None
    region_advised = pyqtSignal(str, object)
    # DriftState when the line's scores drift or come back; None when a new line starts
    drift_changed = pyqtSignal(object)
    failed = pyqtSignal(str)  # a message for the operator
    # line, its active version on disk, the version inspecting: another version was activated
    newer_version = pyqtSignal(str, str, str)

    def __init__(
        self, store: DefectStore, loader: LineLoader, settings: ConsoleSettings, line: str
    ) -> None:
        super().__init__()
        self.store = store
        self.log_store = RecordingLog(store)
        self.loader = loader
        self.settings = settings
        self.line = line
        self.runtime: LineRuntime | None = None
        self.pipeline: Pipeline | None = None
        self.source: Any = None
        self.source_spec = ""
        self.state = "idle"
        self.detail = ""
        self._done_ids: set[str] = set()  # parts committed this session (any line)
        self._done_lock = threading.Lock()
        self._base = CounterView(line)  # counts of the pipelines that already ended
        self._timer: QTimer | None = None
        self._snapshots: SnapshotStore | None = None
        self._drift: DriftMonitor | None = None
        self._active_checked_at = time.monotonic()
        self._announced: tuple[str, str] | None = None  # (line, version) last said to be newer
        # versions swapped out of the running pipeline, closed once it stops deciding with them
        self._retiring: list[tuple[LineRuntime, threading.Event]] = []
        self._thresholds: dict[str, float] = {}  # the running line's versions' thresholds

    # -- slots (run on the worker thread) ----------------------------------------------------

    @pyqtSlot()
    def setup(self) -> None:
        """Start the stats timer and load the first line (connect to QThread.started)."""
        lower_thread_priority()
        self._timer = QTimer(self)
        self._timer.setInterval(self.settings.stats_every_ms)
        self._timer.timeout.connect(self.poll)
        self._timer.start()
        self._load(self.line)

    @pyqtSlot(str)
    def start_source(self, spec: str) -> None:
        """Open SRC and start inspecting (no-op while running)."""
        if self.pipeline is not None and self.pipeline.running:
            return
        self._join_finished()
        if not spec.strip():
            self.failed.emit("no source: give a dataset folder, video file or camera")
            return
        if self.runtime is None and not self._load(self.line):
            return
        self.source_spec = spec.strip()
        self._start_pipeline()

    @pyqtSlot()
    def stop_source(self) -> None:
        """Stop reading; the parts already read are inspected and logged (drain)."""
        if self.pipeline is not None and self.pipeline.running:
            self.pipeline.stop()
            self._set_state("stopping")

    @pyqtSlot(str)
    def switch_line(self, line: str) -> None:
        """Load `line`'s model and inspect the next part with it (no restart of the window).
        The line already inspecting is loaded again only when another of its versions has
        been made active since it was loaded; that version takes over in the running pipeline
        with the source left open (`_swap_in`), another line drains it and opens the source
        again."""
        if line == self.line and self.runtime is not None and self._newer_active() is None:
            return
        was_running = self.pipeline is not None and self.pipeline.running
        previous_state = self.state
        self._set_state("loading", f"loading line {line}")
        try:
            runtime = self.loader(line)
        except Exception as exc:
            self.failed.emit(f"could not load line {line!r}: {exc}")
            self._set_state(previous_state)
            return
        freeze_heap()
        if was_running and line == self.line and self._swap_in(runtime):
            self._set_state(previous_state)
            return
        if was_running:
            self._drain()
        self.runtime, self.line = runtime, line
        self.store.register_model_version(line, runtime.loaded.version, runtime.loaded.sha256)
        self._announce(line, runtime.loaded)
        if was_running:
            self._start_pipeline()
        else:
            self._set_state("idle" if previous_state == "loading" else previous_state)

    @pyqtSlot()
    def shutdown(self) -> None:
        """Stop the timer and drain the pipeline (the window is closing)."""
        if self._timer is not None:
            self._timer.stop()
        if self.pipeline is not None:
            self._drain()
        self._retire(force=True)

    @pyqtSlot()
    def poll(self) -> None:
        """Publish counters and source health; notice a pipeline that ended."""
        if self.pipeline is not None and not self.pipeline.running:
            self._join_finished()
        self._retire(force=self.pipeline is None or not self.pipeline.running)
        self.counters_changed.emit(self.counters())
        self.health_changed.emit(self.health())
        if time.monotonic() - self._active_checked_at >= self.settings.active_check_s:
            self._active_checked_at = time.monotonic()
            newer = self._newer_active()
            if newer is not None and self._announced != (self.line, newer):
                self._announced = (self.line, newer)
                assert self.runtime is not None  # _newer_active needs a loaded line
                self.newer_version.emit(self.line, newer, self.runtime.loaded.version)

    def _swap_in(self, runtime: LineRuntime) -> bool:
        """Hand another version of the running line to its pipeline (`Pipeline.swap_model`):
        the next parts prepared are decided by it, the source stays open (a camera loses no
        frame). A version the source cannot feed (a fused line on a camera without vibration)
        is refused, with the reason, and the running one goes on. False, and nothing done, when
        the version reads the source differently (its region, bit depth or a hot folder's
        sensors): the source must then be opened anew."""
        from inspect_app.service import swap_plan

        assert self.pipeline is not None and self.runtime is not None
        new = runtime.loaded
        how, why = swap_plan(
            self.source, self.line, self.runtime.loaded.card, new.card, self.settings.watch
        )
        if how == "refuse":  # the running version goes on; the operator is told why
            self.failed.emit(f"{new.version} not loaded: {why}")
            new.backend.close()
            return True
        if how == "reopen":
            return False
        self.store.register_model_version(self.line, new.version, new.sha256)
        self._thresholds[new.version] = float(new.card.threshold)
        done = self.pipeline.swap_model(runtime.preprocess, new.backend, new.card, new.version)
        self._retiring.append((self.runtime, done))
        self.runtime = runtime
        self._announce(self.line, new)
        return True

    def _retire(self, force: bool = False) -> None:
        """Close the backends of versions the pipeline no longer decides with."""
        keep = []
        for runtime, done in self._retiring:
            if done.is_set() or force:
                runtime.loaded.backend.close()
            else:
                keep.append((runtime, done))
        self._retiring = keep

    def _newer_active(self) -> str | None:
        """The line's active version on disk when it is not the one inspecting, else None
        (also when it cannot be read: the running model stays)."""
        if self.runtime is None:
            return None
        active = current_active_version(self.settings.home, self.line)
        return None if active == self.runtime.loaded.version else active

    # -- state -------------------------------------------------------------------------------

    def counters(self) -> CounterView:
        """Session counters: the ended pipelines' counts plus the running one's."""
        b = self._base
        if self.pipeline is None:
            return CounterView(self.line, b.parts, b.passed, b.fails, b.faults, 0.0, b.dropped)
        snap = self.pipeline.stats.snapshot()
        return CounterView(
            line=self.line,
            parts=b.parts + snap.parts,
            passed=b.passed + snap.verdicts.get("PASS", 0),
            fails=b.fails + snap.verdicts.get("FAIL", 0),
            faults=b.faults + snap.verdicts.get("FAULT", 0),
            parts_per_s=snap.parts_per_s,
            dropped=b.dropped + sum(snap.drops.values()),
            fault_run=snap.fault_run,
            last_fault=snap.last_fault,
        )

    def health(self) -> SourceHealth:
        reconnects = gaps = failed_reads = repeated = 0
        state = self.state
        if isinstance(self.source, CameraLine):
            stats = self.source.camera.stats
            reconnects, gaps, failed_reads = stats.reconnects, len(stats.gaps), stats.failed_reads
            repeated = stats.repeated_frames
            if state == "running" and stats.gaps and stats.gaps[-1].ended_at is None:
                state = "reconnecting"
        return SourceHealth(
            state, self.source_spec, reconnects, gaps, failed_reads, self.detail, repeated
        )

    def _set_state(self, state: str, detail: str = "") -> None:
        self.state, self.detail = state, detail
        self.health_changed.emit(self.health())

    def _announce(self, line: str, loaded: LoadedLine) -> None:
        """The line now inspecting: its version and classes, and adapt's advised region."""
        self.line_changed.emit(line, loaded.version, list(loaded.card.classes))
        self.region_advised.emit(line, enclosed_roi(loaded.card))

    def _load(self, line: str) -> bool:
        self._set_state("loading", f"loading line {line}")
        try:
            self.runtime = self.loader(line)
        except Exception as exc:
            self.failed.emit(f"could not load line {line!r}: {exc}")
            self._set_state("error", str(exc))
            return False
        freeze_heap()
        loaded = self.runtime.loaded
        self.store.register_model_version(line, loaded.version, loaded.sha256)
        self._announce(line, loaded)
        self._set_state("idle")
        return True

    def _start_pipeline(self) -> None:
        assert self.runtime is not None  # guarded by the callers
        line, loaded = self.line, self.runtime.loaded
        with self._done_lock:
            skip = self.store.seen_part_ids(line) | self._done_ids
        try:
            self.source = open_source(
                self.source_spec,
                self.settings.vibration,
                skip,
                line_window_s(self.settings.window_s, loaded.card, self.settings.watch),
                watch=self.settings.watch,
                recursive=self.settings.recursive,
                modalities=loaded.card.modalities if self.settings.watch else (),
                sample_rate_hz=self.settings.sample_rate_hz,
                frames=FrameFormat.of_line(loaded.card.image_bits, loaded.card.roi),
            )
            check_sensors(self.source, line, loaded.card)
        except Exception as exc:
            self.failed.emit(f"could not open source {self.source_spec!r}: {exc}")
            self._set_state("error", str(exc))
            return
        if self.settings.snapshots:
            # each line keeps its snapshots (and their retention) in its own folder
            root = snapshot_dir_for(self.settings.db_url, self.settings.home, line)
            if self._snapshots is None or self._snapshots.root != root:
                self._snapshots = SnapshotStore(root, RetentionPolicy())
        drift = self.settings.drift
        if drift is not None and (self._drift is None or self._drift.line != line):
            reference = functools.partial(self.store.first_scores, line)
            self._drift = DriftMonitor(line, reference, drift, self.drift_changed.emit)
            self.drift_changed.emit(None)  # another line: nothing to say of it yet
        self._thresholds = {loaded.version: float(loaded.card.threshold)}
        thresholds = self._thresholds  # a version swapped in later adds its own
        roi = loaded.card.roi  # a version reading frames otherwise reopens the source

        def on_committed(parts: list[InspectedPart]) -> None:
            with self._done_lock:
                self._done_ids.update(p.sample.part_id for p in parts)
            # One part per committed batch is drawn: the newest reject if the batch has one
            # (the part the operator must see), else the newest part.
            shown = next((p for p in reversed(parts) if p.verdict.rejected), parts[-1])
            inspection_id = self.log_store.id_of(line, shown.sample.part_id)
            version = shown.model_version or loaded.version
            threshold = thresholds.get(version, float(loaded.card.threshold))
            self.part_committed.emit(part_view(shown, line, version, threshold, inspection_id, roi))
            self.parts_committed.emit(len(parts))

        self.pipeline = Pipeline(
            self.source,
            self.runtime.preprocess,
            loaded.backend,
            loaded.card,
            self.log_store,
            line=line,
            model_version=loaded.version,
            sinks=[AuditSampler(self.settings.audit_every)] if self.settings.audit_every else [],
            watchers=[] if self._drift is None else [self._drift],
            snapshots=self._snapshots,
            config=PipelineConfig(
                batch_size=self.settings.batch_size,
                queue_size=self.settings.queue_size,
                log_batch=self.settings.log_batch,
                drop_when_full=bool(self.source.live),
            ),
            on_committed=on_committed,
        )
        self.pipeline.start()
        self._set_state("running")

    def _drain(self) -> None:
        """Stop the running pipeline and wait until what it read is logged."""
        assert self.pipeline is not None
        self.pipeline.stop()
        self._join_finished(force=True)

    def _join_finished(self, force: bool = False) -> None:
        pipeline = self.pipeline
        if pipeline is None or (pipeline.running and not force):
            return
        outcome = pipeline.join()
        c = self.counters()
        self._base = CounterView(self.line, c.parts, c.passed, c.fails, c.faults, 0.0, c.dropped)
        self.pipeline = None
        if isinstance(self.source, (DatasetReplay, CameraLine, HotFolder)):
            self.source.close()
        if outcome.error:
            self.failed.emit(f"inspection stopped: {outcome.error}")
            self._set_state("error", outcome.error)
        else:
            ended = self.state != "stopping" and not force
            self._set_state("ended" if ended else "stopped")


class LogWorker(QObject):
    """Reads and writes the defect log for the window; lives on its own QThread."""

    page_ready = pyqtSignal(object)  # LogPage
    override_done = pyqtSignal(object)  # OverrideOutcome
    snapshot_ready = pyqtSignal(object, object)  # InspectionRow, RGB uint8 image or None
    report_done = pyqtSignal(str)  # a message naming the files written
    failed = pyqtSignal(str)

    def __init__(self, store: DefectStore, snapshot_dirs: tuple[Path, ...] = ()) -> None:
        super().__init__()
        self.store = store
        self.snapshot_dirs = snapshot_dirs

    @pyqtSlot()
    def setup(self) -> None:
        """Run below the window's priority (connect to QThread.started)."""
        lower_thread_priority()

    @pyqtSlot(object)
    def query(self, q: LogQuery) -> None:
        """One page (`limit`/`offset` on an indexed, time-ordered query) and the match count."""
        since = q.since()
        try:
            total = self.store.count(
                q.line, since, None, q.verdict, q.defect_class, to_check=q.to_check
            )
            rows = self.store.inspections(
                q.line,
                since,
                None,
                q.verdict,
                q.defect_class,
                limit=q.page_size,
                offset=q.page * q.page_size,
                to_check=q.to_check,
            )
        except Exception as exc:
            self.failed.emit(f"could not read the defect log: {exc}")
            return
        self.page_ready.emit(LogPage(q, tuple(rows), total))

    @pyqtSlot(object)
    def apply_override(self, req: OverrideRequest) -> None:
        """Save the operator's correction; answer with the row as it now reads, or why not."""
        try:
            self.store.add_operator_action(
                req.inspection_id, req.action, req.operator, req.note, req.new_class
            )
            row = self.store.inspection(req.inspection_id)
        except (ValueError, KeyError) as exc:
            self.override_done.emit(OverrideOutcome(req, None, str(exc).strip("'\"")))
            return
        except Exception as exc:
            self.override_done.emit(OverrideOutcome(req, None, f"defect log: {exc}"))
            return
        self.override_done.emit(OverrideOutcome(req, row))

    @pyqtSlot(object)
    def load_snapshot(self, row: InspectionRow) -> None:
        """The part's snapshot image (RGB) when it is still on disk (FAIL / FAULT parts)."""
        image = None
        path = find_snapshot(row.snapshot_path, self.snapshot_dirs)
        if path is not None and path.suffix.lower() in SNAPSHOT_IMAGE_SUFFIXES:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is not None:
                image = np.ascontiguousarray(bgr[:, :, ::-1])
        self.snapshot_ready.emit(row, image)

    @pyqtSlot(str, str, object)
    def export_report(self, fmt: str, out: str, line: str | None) -> None:
        """Write a report of `line` (all lines when None) with the report command's code."""
        t0 = time.perf_counter()
        try:
            outcome = write_report(
                self.store, fmt, Path(out), ReportQuery(line=line), self.snapshot_dirs
            )
        except Exception as exc:
            self.failed.emit(f"report not written: {exc}")
            return
        files = ", ".join(str(f) for f in outcome.files)
        seconds = time.perf_counter() - t0
        self.report_done.emit(
            f"{fmt.upper()} report of {outcome.inspections} parts written: {files} "
            f"({seconds:.1f} s)"
        )
