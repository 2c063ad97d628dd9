"""The headless inspection service behind `inspect-app serve` (and the demo).

Builds one line's pipeline from the line model in HOME, the source and the defect log; serves the
read-only HTTP endpoints; stops gracefully on SIGTERM / SIGINT (reading stops, everything already
read is inspected and committed, exit 0); reloads the line's active version on SIGHUP. A
restarted service skips the parts already in the log.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from inspect_app.backends import Backend, BackendError
from inspect_app.defaults import (
    ENGINE_FILE,
    FAULT_RUN_UNHEALTHY,
    HOT_FOLDER_SETTLE_S,
    exported_graph_name,
    precision_problem,
)
from inspect_app.drift import DriftMonitor, DriftState
from inspect_app.http_server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    HttpContext,
    HttpEndpoints,
    parse_bind,
)
from inspect_app.lines import current_active_version, line_window_s
from inspect_app.pipeline import (
    InspectedPart,
    Pipeline,
    PipelineConfig,
    PipelineOutcome,
    RejectSink,
)
from inspect_app.runtime import RuntimeStats
from inspect_app.sinks import (
    AuditSampler,
    CommandHook,
    ModbusCoilSink,
    ModbusTarget,
    RejectRunAlarm,
    run_command,
)
from inspect_app.snapshots import RetentionPolicy, SnapshotStore, snapshot_dir_for
from inspect_app.sources import DatasetReplay, check_sensors, open_source, sensor_mismatch
from inspect_app.store import DefectStore, StoreUnavailable
from inspect_app.systemd_notify import SystemdNotifier
from sensors.camera import FrameFormat
from sensors.sample import Sample

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STORE_UNAVAILABLE = 75  # EX_TEMPFAIL: the database could not take writes; try later
EXIT_FAILED = 1


@dataclass(frozen=True)
class ServeOptions:
    """Everything `inspect-app serve` is told."""

    home: Path
    line: str
    source: str
    db_url: str
    backend: str = "torch"
    precision: str = "fp32"  # which exported graph onnxruntime runs (fp32, fp16, int8)
    http: str | None = f"{DEFAULT_HOST}:{DEFAULT_PORT}"  # None: no HTTP
    max_parts: int | None = None
    vibration: str | None = None
    window_s: float | None = None
    watch: bool = False  # source is a hot folder (inspect_app.sources.HotFolder)
    sample_rate_hz: float | None = None  # of a hot folder's .npy / .csv / .mat vibration files
    settle_s: float = HOT_FOLDER_SETTLE_S  # a hot folder's file is read once it holds its size
    idle_exit_s: float | None = None  # a hot folder ends after this long without a new part
    recursive: bool = False  # a hot folder's subfolders are watched too
    reject_command: str | None = None
    modbus: str | None = None
    alarm_command: str | None = None  # run once when `alarm_after` parts in a row are rejected
    alarm_after: int | None = None
    audit_every: int | None = None  # one passed part in N, at random, picked for a check
    audit_command: str | None = None
    drift: bool = True  # watch the parts' scores for drift (inspect_app.drift)
    drift_command: str | None = None  # run when the line drifts and when it is back
    snapshots: bool = True
    snapshot_max_parts: int = RetentionPolicy.max_parts
    snapshot_max_bytes: int = RetentionPolicy.max_bytes
    batch_size: int = 8
    threads: int | None = None
    store_give_up_s: float = 120.0
    status_every_s: float = 30.0


@dataclass
class LoadedLine:
    """A line model ready to run: its backend, card, version folder and version name."""

    backend: Backend
    card: Any  # inspect_app.lines.LineCard
    folder: Path
    version: str
    sha256: str | None


def weights_sha256(folder: Path) -> str | None:
    """sha256 of the version's weights (a version must never change; the log records it)."""
    path = folder / "weights.safetensors"
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_line(
    home: Path,
    line: str,
    backend: str = "torch",
    threads: int | None = None,
    version: str | None = None,
    precision: str = "fp32",
) -> LoadedLine:
    """Open the line's active model (or `version`) with the chosen backend; onnxruntime runs
    the exported graph of `precision` (fp16 and int8 only when `export` wrote them)."""
    from inspect_app.lines import load_line_model, read_card, version_dir

    folder = version_dir(home, line, version)
    card = read_card(folder)
    problem = precision_problem(backend, precision)
    if problem is not None:
        raise ValueError(problem)
    if backend == "torch":
        from inspect_app.backends.torch_backend import TorchBackend

        if threads is not None:
            import torch

            torch.set_num_threads(threads)  # a process per line: its share of the cores
        model, card, folder = load_line_model(home, line, folder.name)
        runner: Backend = TorchBackend(model)
    elif backend == "onnxruntime":
        from inspect_app.backends.onnxruntime_backend import open_exported

        graph = onnx_graph_for(home, line, folder, card, precision)
        runner = open_exported(graph, threads=threads)
    elif backend == "tensorrt":
        from inspect_app.backends import open_backend

        runner = open_backend(folder / ENGINE_FILE)
    else:
        msg = f"unknown backend {backend!r}; expected torch, onnxruntime or tensorrt"
        raise ValueError(msg)
    return LoadedLine(runner, card, folder, folder.name, weights_sha256(folder))


def onnx_graph_for(home: Path, line: str, folder: Path, card: Any, precision: str = "fp32") -> Path:
    """The version's `model.onnx` from `inspect-app export`, else a cached minimal export; for
    fp16 / int8, the graph `export --fp16 / --int8` wrote (never made here: its check against
    the line's parts is export's)."""
    exported = folder / exported_graph_name(precision)
    if exported.is_file():
        return exported
    if precision != "fp32":
        msg = (
            f"{exported} does not exist: line {line!r} {folder.name} has no {precision} graph; "
            f"make it with `inspect-app export --line {line} --version {folder.name} "
            f"--{precision}`"
        )
        raise ValueError(msg)
    cached = home / "cache" / "onnx" / line / f"{folder.name}.onnx"
    if cached.is_file() and cached.stat().st_mtime >= (folder / "line.json").stat().st_mtime:
        return cached
    from inspect_app.backends.onnxruntime_backend import export_for_runtime
    from inspect_app.lines import load_line_model

    model, card, _ = load_line_model(home, line, folder.name)
    log.info("exporting line %s %s to ONNX at %s", line, folder.name, cached)
    return export_for_runtime(model, example_inputs(card), cached)


def example_inputs(card: Any, batch: int = 2) -> Any:
    """A zero batch shaped like the line's inputs (for tracing an export)."""
    import torch

    from models.inputs import ModelInputs

    has_image, has_vibration = "image" in card.modalities, "vibration" in card.modalities
    bins = card.spectrum_config().n_bins
    size = card.image_size
    return ModelInputs(
        image=torch.zeros(batch, 3, size, size) if has_image else None,
        spectrum=torch.zeros(batch, 2, bins) if has_vibration else None,
        image_present=torch.ones(batch, dtype=torch.bool) if has_image else None,
        vibration_present=torch.ones(batch, dtype=torch.bool) if has_vibration else None,
    )


def open_store(
    url: str, give_up_s: float, sleep: Callable[[float], None] = time.sleep
) -> DefectStore:
    """Open the defect log, waiting with capped backoff while it is locked or unreachable."""
    delay, waited = 0.5, 0.0
    while True:
        try:
            return DefectStore.open(url)
        except StoreUnavailable as exc:
            if waited >= give_up_s:
                raise
            log.error("%s; retrying in %.1f s", exc, delay)
            sleep(delay)
            waited += delay
            delay = min(delay * 2, 10.0)


def build_sinks(options: ServeOptions) -> list[RejectSink]:
    """The reject outputs the options ask for."""
    sinks: list[RejectSink] = []
    if options.reject_command:
        sinks.append(CommandHook(options.reject_command, line=options.line))
    if options.modbus:
        sinks.append(ModbusCoilSink(ModbusTarget.parse(options.modbus)))
    if options.alarm_command and options.alarm_after:
        sinks.append(RejectRunAlarm(options.alarm_command, options.alarm_after, options.line))
    if options.audit_every:
        sinks.append(AuditSampler(options.audit_every, options.audit_command, options.line))
    return sinks


def row_json(row: Any) -> dict[str, Any]:
    """An `InspectionRow` as JSON-able values."""
    data = dataclasses.asdict(row)
    data["timestamp"] = row.timestamp.isoformat()
    return data


class InspectionService:
    """A running line: pipeline + HTTP + signals. Use `InspectionService.build(options).run()`.

    SIGHUP (`systemctl reload`) loads the line's active version again: the new model is loaded
    while the old one keeps inspecting, then handed down the running pipeline
    (`Pipeline.swap_model`): the parts already prepared finish on the old model and the next on
    the new one, with the source left open (a live camera loses no frame). A version that reads
    the source differently (another region of interest or bit depth, or a hot folder waiting
    for other sensors) needs the source opened anew: the old pipeline is drained (everything
    read is inspected and committed) and a new one starts, skipping the parts already in the
    log. A version that cannot be loaded, or does not fit the source, leaves the old one
    running and says why.
    """

    def __init__(
        self,
        options: ServeOptions,
        store: DefectStore,
        loader: Callable[[], LoadedLine],
        preprocess: Callable[[list[Sample]], Any] | None = None,
        on_committed: Callable[[list[InspectedPart]], None] | None = None,
    ) -> None:
        self.options = options
        self.store = store
        self.loader = loader
        self.stats = RuntimeStats()  # one for the service: counts go on across reloads
        self.snapshots = (
            SnapshotStore(
                snapshot_dir_for(options.db_url, options.home, options.line),
                RetentionPolicy(options.snapshot_max_parts, options.snapshot_max_bytes),
            )
            if options.snapshots
            else None
        )
        self.drift = (
            DriftMonitor(
                options.line,
                functools.partial(store.first_scores, options.line),
                on_change=self._drift_changed,
            )
            if options.drift
            else None
        )
        self.http: HttpEndpoints | None = None
        self.skipped = 0
        self.notifier = SystemdNotifier.from_environment()
        self._preprocess = preprocess
        self._on_committed = on_committed
        self._stop_signals = 0
        self._reload = threading.Event()
        self._committed_before = 0  # parts committed by the pipelines a reload replaced
        self._parts_before = 0
        self._final: PipelineOutcome | None = None  # how a drain for a reload ended, if it failed
        self._loading: Future[LoadedLine] | None = None  # a reload's model, loading
        # a reload's model handed to the running pipeline, and the event set once it decides
        self._switching: tuple[LoadedLine, threading.Event] | None = None
        self._http_context: HttpContext | None = None

    @classmethod
    def build(
        cls,
        options: ServeOptions,
        on_committed: Callable[[list[InspectedPart]], None] | None = None,
        loaded: LoadedLine | None = None,
        preprocess: Callable[[list[Sample]], Any] | None = None,
        loader: Callable[[], LoadedLine] | None = None,
    ) -> InspectionService:
        """Open the log, the line model and the source; `loaded` / `preprocess` replace the
        line model's backend and `prepare_batch` (tests and benchmarks pass their own), and
        `loader` what a reload loads (default: the line's active version from HOME)."""
        store = open_store(options.db_url, options.store_give_up_s)
        try:
            load = loader or (
                lambda: load_line(
                    options.home,
                    options.line,
                    options.backend,
                    options.threads,
                    precision=options.precision,
                )
            )
            service = cls(options, store, load, preprocess, on_committed)
            service.loaded = loaded or load()
            service.pipeline = service._open(service.loaded)
            if isinstance(service.pipeline.source, DatasetReplay):
                service.skipped = service.pipeline.source.skipped
            if options.http:
                host, port = parse_bind(options.http)
                service._http_context = HttpContext(
                    model_version=service.loaded.version,
                    active_version=lambda: current_active_version(options.home, options.line),
                    line=options.line,
                    stats=service.stats,
                    health=lambda: _health(service.pipeline),
                    recent=lambda n: [
                        row_json(r) for r in store.inspections(line=options.line, limit=n)
                    ],
                    drift=None if service.drift is None else service.drift.state,
                )
                service.http = HttpEndpoints(service._http_context, host, port)
        except BaseException:
            store.close()
            raise
        return service

    loaded: LoadedLine
    pipeline: Pipeline

    def _open(self, loaded: LoadedLine) -> Pipeline:
        """A pipeline for `loaded` on a freshly opened source that skips the parts already in
        the log (ValueError when the line's sensors do not fit the source)."""
        options, card = self.options, loaded.card
        self.store.register_model_version(options.line, loaded.version, loaded.sha256)
        source = open_source(
            options.source,
            options.vibration,
            skip_part_ids=self.store.seen_part_ids(options.line),
            window_s=line_window_s(options.window_s, card, options.watch),
            watch=options.watch,
            modalities=card.modalities if options.watch else (),
            sample_rate_hz=options.sample_rate_hz,
            settle_s=options.settle_s,
            idle_exit_s=options.idle_exit_s,
            recursive=options.recursive,
            frames=FrameFormat.of_line(card.image_bits, card.roi),
        )
        check_sensors(source, options.line, card)  # closes the source when it refuses
        preprocess = self._preprocess or _line_preprocess(options.line, card)
        max_parts = options.max_parts
        if max_parts is not None:  # what is left of it after the pipelines a reload replaced
            max_parts = max(0, max_parts - self._parts_before)  # counted as the pipeline does
        return Pipeline(
            source,
            preprocess,
            loaded.backend,
            card,
            self.store,
            line=options.line,
            model_version=loaded.version,
            sinks=build_sinks(options),
            watchers=[] if self.drift is None else [self.drift],
            snapshots=self.snapshots,
            config=PipelineConfig(
                batch_size=options.batch_size,
                drop_when_full=source.live,
                max_parts=max_parts,
                store_give_up_s=options.store_give_up_s,
            ),
            stats=self.stats,
            on_committed=self._on_committed,
        )

    def stop(self) -> None:
        """Stop reading; the parts already read are inspected and committed."""
        self.pipeline.stop()

    def request_reload(self) -> None:
        """Load the line's active version at the next turn of `run` (SIGHUP calls this)."""
        self._reload.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if signum == getattr(signal, "SIGHUP", None):
            self.request_reload()
            return
        self._stop_signals += 1
        name = signal.Signals(signum).name
        if self._stop_signals == 1:
            print(f"inspect-app serve: {name}, finishing the parts in flight…", file=sys.stderr)
            self.notifier.stopping()
            self.stop()

    def run(self, install_signals: bool = True) -> PipelineOutcome:
        """Run until the source ends, `--max-parts` is reached, or a stop signal; then drain.
        A reload (SIGHUP, `request_reload`) swaps the line model in between."""
        previous: dict[int, Any] = {}
        if install_signals and threading.current_thread() is threading.main_thread():
            wanted = [signal.SIGTERM, signal.SIGINT]
            if hasattr(signal, "SIGHUP"):
                wanted.append(signal.SIGHUP)
            for sig in wanted:
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            if self.http is not None:
                self.http.start()
                host, port = self.http.address
                print(f"inspect-app serve: HTTP on http://{host}:{port}/healthz", file=sys.stderr)
            self.pipeline.start()
            self.notifier.ready(f"inspecting line {self.options.line}")
            next_status = time.monotonic() + self.options.status_every_s
            while self.pipeline.running:
                time.sleep(0.1)
                if self.notifier.watchdog_due():
                    self.notifier.watchdog()
                if self._switching is not None and self._switching[1].is_set():
                    self._switched()
                idle = self._loading is None and self._switching is None
                if self._reload.is_set() and self._stop_signals == 0 and idle:
                    self._reload.clear()  # loaded on its own thread: the watchdog goes on
                    self.notifier.status(f"reloading line {self.options.line}")
                    self._loading = _in_background(self.loader)
                if self._loading is not None and self._loading.done():
                    loading, self._loading = self._loading, None
                    self._swap_model(loading)
                if time.monotonic() >= next_status:
                    next_status += self.options.status_every_s
                    self._log_status()
            outcome = self._final or self.pipeline.join()
            if self._switching is not None:  # the run ended while a swap was on its way
                if self._switching[1].is_set():
                    self._switched()
                else:
                    self._switching[0].backend.close()
                    self._switching = None
            if self._committed_before or self._parts_before:  # the pipelines a reload replaced
                outcome = dataclasses.replace(
                    outcome,
                    parts=outcome.parts + self._parts_before,
                    committed=outcome.committed + self._committed_before,
                )
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.http is not None:
                self.http.close()
            self.store.close()
        return outcome

    def _drift_changed(self, state: DriftState) -> None:
        """The line drifted, or is back (the monitor has logged it): systemd's status line
        says so, and `--drift-command` runs, on its own thread (never the reject signal's)."""
        line = self.options.line
        self.notifier.status(
            f"line {line}: defect scores drifted {state.direction} than its first parts'"
            if state.drifted
            else f"line {line}: defect scores back to the reference"
        )
        command = self.options.drift_command
        if not command:
            return
        env = {
            "INSPECT_LINE": line,
            "INSPECT_MODEL_VERSION": state.version,
            "INSPECT_DRIFT": "1" if state.drifted else "0",
            "INSPECT_DRIFT_DIRECTION": state.direction,
            "INSPECT_DRIFT_HIGHER": "" if state.higher is None else f"{state.higher:.3f}",
            "INSPECT_DRIFT_RECENT": str(state.recent),
            "INSPECT_DRIFT_MESSAGE": state.describe(line) if state.drifted else "",
        }
        what = "for the line's drift" if state.drifted else "for the line's drift ending"

        def run() -> None:
            try:
                run_command(shlex.split(command), env, 30.0, "drift command", what)
            except Exception as exc:
                self.stats.record_sink_error("drift_command")
                log.warning("%s", exc)

        threading.Thread(target=run, name="drift-command", daemon=True).start()

    def _swap_model(self, loading: Future[LoadedLine]) -> None:
        """Inspect with the line's version just loaded, from the next part read, when it is
        another one than the running version (see the class docstring)."""
        line, running = self.options.line, self.loaded.version
        say = f"inspect-app serve: reload: line {line}"
        try:
            loaded = loading.result()
        except Exception as exc:
            print(
                f"{say}: cannot load its active version ({exc}); {running} goes on", file=sys.stderr
            )
            return
        how, why = swap_plan(
            self.pipeline.source, line, self.loaded.card, loaded.card, self.options.watch
        )
        if loaded.version == running or how == "refuse":
            why = why or f"{running} is still its active version"
            print(f"{say}: {why}; {running} goes on", file=sys.stderr)
            loaded.backend.close()
            return
        if how == "swap":
            self.store.register_model_version(line, loaded.version, loaded.sha256)
            preprocess = self._preprocess or _line_preprocess(line, loaded.card)
            done = self.pipeline.swap_model(preprocess, loaded.backend, loaded.card, loaded.version)
            self._switching = (loaded, done)
            return
        print(f"{say}: {loaded.version} {why}: opening the source again", file=sys.stderr)
        self.notifier.status(f"reloading line {line}: draining {running}")
        self.pipeline.stop()
        outcome = self.pipeline.join()  # everything read is inspected and committed
        if outcome.error is not None or self._stop_signals:  # the log is gone, or a stop came
            self._final = outcome  # while draining: the service ends here, as it would have
            loaded.backend.close()
            return
        self._committed_before += outcome.committed
        self._parts_before += outcome.parts
        try:
            pipeline = self._open(loaded)
        except (ValueError, OSError) as exc:  # the source will not open again (a camera gone)
            self._final = PipelineOutcome(0, 0, f"reload to {loaded.version}: {exc}")
            loaded.backend.close()
            return
        self.pipeline = pipeline
        self.pipeline.start()
        self._inspecting_with(loaded)

    def _switched(self) -> None:
        """The running pipeline decides with the reloaded model now: the old one can go."""
        assert self._switching is not None
        loaded, _ = self._switching
        self._switching = None
        self._inspecting_with(loaded, "; the source stayed open")

    def _inspecting_with(self, loaded: LoadedLine, how: str = "") -> None:
        """A reload took: `loaded` decides the parts now; /healthz names it, the old model's
        backend is closed, and the journal and systemd say so."""
        old, self.loaded = self.loaded, loaded
        if self._http_context is not None:
            self._http_context.model_version = loaded.version
        old.backend.close()
        line = self.options.line
        print(
            f"inspect-app serve: reload: line {line}: inspecting with {loaded.version} "
            f"(was {old.version}){how}",
            file=sys.stderr,
        )
        self.notifier.status(f"inspecting line {line} with {loaded.version}")

    def _log_status(self) -> None:
        snap = self.stats.snapshot()
        msg = (
            f"parts {snap.parts}  PASS {snap.verdicts.get('PASS', 0)}  "
            f"FAIL {snap.verdicts.get('FAIL', 0)}  FAULT {snap.verdicts.get('FAULT', 0)}  "
            f"{snap.parts_per_s:.1f} parts/s  "
            f"drops {sum(snap.drops.values())}"
        )
        if snap.source_backlog is not None:
            msg += f"  waiting in the folder {snap.source_backlog}"
        print(f"inspect-app serve: {msg}", file=sys.stderr)
        self.notifier.status(msg)


def swap_plan(source: object, line: str, old: Any, new: Any, watch: bool) -> tuple[str, str | None]:
    """How a running line takes another version of its model, `new` after `old` (line cards):
    ("swap", None): handed down the running pipeline between two parts (`Pipeline.swap_model`);
    ("reopen", why): it reads the source otherwise, which must be opened anew;
    ("refuse", why): the source cannot feed it at all (`sensor_mismatch`), the old one goes on.
    `serve`'s reload and the console's version switch both follow it."""
    problem = sensor_mismatch(source, line, new)
    if problem is not None:
        return "refuse", problem
    why = reads_differently(old, new, watch)
    return ("swap", None) if why is None else ("reopen", why)


def reads_differently(old: Any, new: Any, watch: bool) -> str | None:
    """Why a line card needs the source opened anew to replace `old` (None when the running
    source reads its parts as it needs them): the frames are cropped or scaled as they are
    read, and a hot folder waits for the line's sensors."""
    if getattr(old, "roi", None) != getattr(new, "roi", None):
        return "has another region of interest"
    if getattr(old, "image_bits", None) != getattr(new, "image_bits", None):
        return "reads frames with another bit depth"
    if watch and set(old.modalities) != set(new.modalities):
        return "has other sensors"
    if line_window_s(None, old, watch) != line_window_s(None, new, watch):
        return "was taught on other vibration windows"
    return None


def _line_preprocess(line: str, card: Any) -> Callable[[list[Sample]], Any]:
    """`prepare_batch` for the line's card, warning once per pipeline when the camera's frames
    are smaller than the line was taught on."""
    from inspect_app.preprocess import prepare_batch, small_frames, small_frames_note

    warned = False

    def preprocess(samples: list[Sample]) -> Any:
        nonlocal warned
        small = [] if warned else small_frames(samples, card)
        if small:  # once per run: the camera's resolution changed since teaching
            warned = True
            note = small_frames_note(len(small), small[0], card)
            log.warning("line %s: %s", line, note)
        return prepare_batch(samples, card)

    return preprocess


def _in_background(load: Callable[[], LoadedLine]) -> Future[LoadedLine]:
    """`load()` on its own thread (a TensorRT engine or a model takes seconds to load)."""
    future: Future[LoadedLine] = Future()

    def work() -> None:
        try:
            future.set_result(load())
        except BaseException as exc:  # handed to the service's loop, which says what it was
            future.set_exception(exc)

    threading.Thread(target=work, name="reload", daemon=True).start()
    return future


def _health(pipeline: Pipeline) -> tuple[bool, str]:
    if pipeline.error:
        return False, pipeline.error
    snap = pipeline.stats.snapshot()
    if snap.store_error:
        return False, f"defect log unavailable, retrying: {snap.store_error}"
    if snap.fault_run >= FAULT_RUN_UNHEALTHY:
        return False, (
            f"the last {snap.fault_run} parts could not be inspected (FAULT, rejected); "
            f"latest: {snap.last_fault}"
        )
    return True, "inspecting" if pipeline.running else "idle"


def serve(
    options: ServeOptions,
    loaded: LoadedLine | None = None,
    preprocess: Callable[[list[Sample]], Any] | None = None,
    loader: Callable[[], LoadedLine] | None = None,
) -> int:
    """Run the service; the exit status for `inspect-app serve` (see `InspectionService.build`
    for `loaded`, `preprocess` and `loader`)."""
    try:
        service = InspectionService.build(
            options, loaded=loaded, preprocess=preprocess, loader=loader
        )
    except StoreUnavailable as exc:
        print(
            f"inspect-app serve: {exc}; giving up after {options.store_give_up_s:.0f} s",
            file=sys.stderr,
        )
        return EXIT_STORE_UNAVAILABLE
    except (BackendError, ValueError, OSError) as exc:
        print(f"inspect-app serve: {exc}", file=sys.stderr)
        return EXIT_FAILED
    runs = service.loaded.backend
    graph = getattr(runs, "path", None)
    print(
        f"inspect-app serve: line {options.line} {service.loaded.version} on {options.backend}"
        + (f" ({graph})" if graph is not None else ""),
        file=sys.stderr,
    )
    if service.skipped:
        print(
            f"inspect-app serve: {service.skipped} parts of {options.source} are already in "
            "the log; continuing after them",
            file=sys.stderr,
        )
    outcome = service.run()
    snap = service.stats.snapshot()
    print(
        f"inspect-app serve: {outcome.committed} parts committed "
        f"(PASS {snap.verdicts.get('PASS', 0)}, FAIL {snap.verdicts.get('FAIL', 0)}, "
        f"FAULT {snap.verdicts.get('FAULT', 0)}), {snap.parts_per_s:.1f} parts/s"
        + (f", {snap.audits} passed parts picked for a check" if options.audit_every else ""),
        file=sys.stderr,
    )
    if outcome.error:
        print(f"inspect-app serve: stopped: {outcome.error}", file=sys.stderr)
        return EXIT_STORE_UNAVAILABLE if outcome.store_unavailable else EXIT_FAILED
    return EXIT_OK
