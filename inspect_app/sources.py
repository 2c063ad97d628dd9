"""Where parts come from: a dataset folder replayed as a line, a camera paired with vibration,
or a hot folder another program writes each part's files into.

Every source is a context-managed iterator of `sensors.sample.Sample`. A part that cannot be read
comes out with `fault` set (it becomes a FAULT row), never dropped. `live` says whether the source
runs on its own clock (a camera: the pipeline drops under overload and counts it) or waits for
the pipeline (a file: nothing is dropped).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from inspect_app.defaults import HOT_FOLDER_SETTLE_S
from sensors.camera import IMAGE_SUFFIXES, CaptureSource, FrameFormat, is_live
from sensors.dataset import LineDataset
from sensors.errors import DataError
from sensors.sample import Sample
from sensors.vibration import VIBRATION_SUFFIXES, VibrationReplay, read_vibration

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpeg", ".mjpg"})


class DatasetReplay:
    """A dataset folder (DESIGN §3) replayed as a line, in row order.

    Parts whose id is in `skip_part_ids` (already in the defect log) are skipped without reading
    their files, so a restarted service continues where it stopped and logs no part twice.
    """

    live = False

    def __init__(
        self,
        folder: str | Path,
        skip_part_ids: Collection[str] = (),
        window_s: float | None = None,
        frames: FrameFormat | None = None,
    ) -> None:
        self.dataset = LineDataset.open(folder, window_s=window_s, frames=frames)
        self.skip = frozenset(skip_part_ids)
        self.pending = [i for i, r in enumerate(self.dataset.rows) if r.part_id not in self.skip]
        self.skipped = len(self.dataset) - len(self.pending)
        self.name = str(folder)

    def __len__(self) -> int:
        """Parts still to replay (the skipped ones excluded)."""
        return len(self.pending)

    def __iter__(self) -> Iterator[Sample]:
        for index in self.pending:
            sample = self.dataset.load(index, strict=False)
            sample.meta.setdefault("source", f"{self.name} part {sample.part_id}")
            yield sample

    def __enter__(self) -> DatasetReplay:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def close(self) -> None:
        return None


class CameraLine:
    """A camera (OpenCV index, RTSP URL, GStreamer pipeline or video file) paired with vibration.

    Each frame becomes one part; with a vibration recording, the part carries the next
    `window_s` seconds of it (a replayed recording stands in for a live DAQ). Part ids are the
    UTC time the frame arrived plus its index, unique across restarts.
    """

    def __init__(
        self,
        spec: str | int,
        vibration: str | Path | None = None,
        window_s: float = 1.0,
        sample_rate_hz: float | None = None,
        frames: FrameFormat | None = None,
    ) -> None:
        self.camera = CaptureSource(spec)
        self.frames = frames or FrameFormat()  # its region (a camera's frames are 8-bit)
        self.live = self.camera.live
        self.vibration = (
            VibrationReplay(
                read_vibration(vibration, sample_rate_hz=sample_rate_hz),
                window_s=window_s,
                realtime=self.live,
                loop=True,
            )
            if vibration is not None
            else None
        )
        if self.vibration is not None and self.vibration.windows < 2:
            # looped, one window would pair every part with the same samples: each part after
            # the first a FAULT (a reading repeated, `pipeline.RepeatWatch`)
            msg = (
                f"{vibration}: the recording holds one {window_s:g} s window; looped, every "
                "part would get the same samples (a frozen feed, FAULT): give a recording at "
                "least two windows long, or a shorter --window-s"
            )
            raise ValueError(msg)
        self.name = str(spec)

    def __iter__(self) -> Iterator[Sample]:
        with self.camera:
            for frame in self.camera:
                arrived = datetime.now(timezone.utc)
                part_id = f"{arrived.strftime('%Y%m%dT%H%M%S.%f')}-{frame.index:06d}"
                sample = Sample(
                    part_id=part_id,
                    frame=frame.image,
                    timestamp=arrived.timestamp(),
                    fault=frame.fault,
                    meta={"source": f"{self.name} frame {frame.index}"},
                )
                if sample.frame is not None:
                    try:
                        sample.frame = self.frames.crop(sample.frame, sample.meta["source"])
                    except DataError as exc:  # a FAULT naming the frame, never a wrong crop
                        sample.frame, sample.fault = None, str(exc)
                if self.vibration is not None:
                    try:
                        sample.vibration = self.vibration.read().window
                    except (DataError, TimeoutError, ValueError) as exc:
                        sample.fault = (
                            sample.fault or f"vibration {self.vibration.recording.source}: {exc}"
                        )
                yield sample

    def __enter__(self) -> CameraLine:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.camera.close()
        if self.vibration is not None:
            self.vibration.close()


# a hot folder is listed at least this often even when its modification time has not moved
FULL_LISTING_S = 2.0
# a .txt beside a part's frame is more often the camera's notes than a recording: a hot folder
# reads vibration from the other suffixes only (a dataset's labels.csv may still name a .txt)
_KINDS = {s: "image" for s in IMAGE_SUFFIXES} | {
    s: "vibration" for s in VIBRATION_SUFFIXES if s != ".txt"
}


def hot_folder_file(name: str) -> tuple[str, str] | None:
    """(part id, "image" | "vibration") of a file name in a hot folder, or None for a file
    that is no part's (another suffix, or hidden: a writer's temporary file)."""
    stem, suffix = os.path.splitext(name)
    kind = _KINDS.get(suffix.lower())
    return None if kind is None or name.startswith(".") else (stem, kind)


@dataclass
class _Listing:
    """One folder of a hot folder's tree as last listed: its modification time, the part files
    in it (paths relative to the hot folder, `/`-separated) and its subfolders' names."""

    mtime: int
    files: set[str]
    subfolders: list[str]


@dataclass
class _Arrival:
    """The files of one part (one name stem) seen so far in a hot folder."""

    first_seen: float  # monotonic
    files: dict[str, Path]  # "image" / "vibration" -> path
    sizes: dict[Path, tuple[int, int]]  # path -> (size, mtime_ns) at the last scan
    steady_since: dict[Path, float]  # path -> when its size and mtime last changed
    seen_at: dict[Path, float] = field(default_factory=dict)  # path -> its last observation

    def observe(self, path: Path, st: os.stat_result, now: float) -> None:
        """Note `path`'s size and mtime at `now`; a change restarts its settle time."""
        self.seen_at[path] = now
        size = (st.st_size, st.st_mtime_ns)
        if self.sizes.get(path) != size:
            self.sizes[path] = size
            self.steady_since[path] = now


class HotFolder:
    """A folder that the camera and DAQ software write parts into, watched until stopped.

    Each part is one name stem: `P123.png` and, on a line with vibration, `P123.wav` (or
    `.npy` / `.csv` / `.mat` with `sample_rate_hz`). A part is read once each of its files has
    kept its size for `settle_s` (a file still being written is never read half-way); a part
    whose other sensor's file has not come `pair_timeout_s` after the first is a FAULT naming
    the missing file, never dropped; so is a file still empty by then. Files of a sensor the
    line does not have are not parts. The part id is the stem, so a restarted service skips
    the parts already in the defect log (`skip_part_ids`); parts still pending at a stop are
    read after the restart. Files are read where they are and left in place. `stop()` ends
    the iteration at the next poll; `idle_stop_s` ends it after that long without a new part.
    With `recursive` the subfolders are watched too, at any depth (hidden ones aside): a
    camera that writes each day into its own folder. A part's id is then its path below the
    folder without the suffix (`2026-12-06/P0001`), unique across the days.
    """

    live = False  # files wait on disk: nothing is dropped, the pipeline catches up

    def __init__(
        self,
        folder: str | Path,
        modalities: Collection[str] = ("image",),
        skip_part_ids: Collection[str] = (),
        sample_rate_hz: float | None = None,
        settle_s: float = HOT_FOLDER_SETTLE_S,
        pair_timeout_s: float = 10.0,
        poll_s: float = 0.2,
        idle_stop_s: float | None = None,
        frames: FrameFormat | None = None,
        recursive: bool = False,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            msg = f"hot folder {self.folder} is not a folder"
            raise ValueError(msg)
        unknown = set(modalities) - {"image", "vibration"}
        if unknown or not modalities:
            msg = f"modalities must be image and/or vibration, got {sorted(modalities)}"
            raise ValueError(msg)
        idle_ok = idle_stop_s is None or idle_stop_s > 0
        if settle_s < 0 or pair_timeout_s <= 0 or poll_s <= 0 or not idle_ok:
            msg = (
                f"settle time {settle_s} s must be 0 or more, the pairing timeout "
                f"{pair_timeout_s} s, the poll {poll_s} s and the idle exit {idle_stop_s} s "
                "more than 0"
            )
            raise ValueError(msg)
        self.modalities = tuple(m for m in ("image", "vibration") if m in modalities)
        self.skip = set(skip_part_ids)
        self.sample_rate_hz = sample_rate_hz
        self.settle_s = settle_s
        self.pair_timeout_s = pair_timeout_s
        self.poll_s = poll_s
        self.idle_stop_s = idle_stop_s
        self.frames = frames or FrameFormat()  # the line's 16-bit depth and region
        self.recursive = recursive
        self._listings: dict[str, _Listing] = {}  # "" the folder, "a/b" a subfolder
        self.name = str(folder)
        # seconds the last part waited for its files before it was read: the pipeline does not
        # count them as the part's latency (an idle line is not a slow one)
        self.last_wait_s = 0.0
        self._pending: dict[str, _Arrival] = {}  # seen, not read yet
        self._listed_at = float("-inf")
        self._stopped = threading.Event()

    def stop(self) -> None:
        """End the iteration at the next poll (the pipeline's stop calls this)."""
        self._stopped.set()

    def backlog(self) -> int:
        """Parts whose files are in the folder and not read yet (the pipeline's /metrics)."""
        return len(self._pending)

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> HotFolder:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Sample]:
        pending = self._pending
        last_part = waiting_since = time.monotonic()
        while not self._stopped.is_set():
            now = time.monotonic()
            self._scan(now)
            ready = [stem for stem, a in pending.items() if self._ready(a, now)]
            for stem in sorted(ready, key=lambda k: (pending[k].first_seen, k)):
                arrival = pending.pop(stem)
                self.skip.add(stem)
                last_part = now
                self.last_wait_s = time.monotonic() - waiting_since
                yield self._load(stem, arrival)
                waiting_since = time.monotonic()
                if self._stopped.is_set():
                    return
            if self.idle_stop_s is not None and not pending and now - last_part > self.idle_stop_s:
                return
            self._stopped.wait(self.poll_s)

    def _scan(self, now: float) -> None:
        """Find new files and watch the pending ones grow. A folder (and with `recursive` each
        subfolder) is listed when its own modification time says a file came or went, and
        every `FULL_LISTING_S` whatever it says (coarse clocks on network shares); otherwise
        only the pending files are looked at, so an idle line with a large folder costs
        almost nothing."""
        full = now - self._listed_at >= FULL_LISTING_S
        if full:
            self._listed_at = now
        listed, visited = False, set()
        queue = [""]
        while queue:
            rel = queue.pop()
            folder = self.folder / rel if rel else self.folder
            try:
                mtime = folder.stat().st_mtime_ns
            except OSError:
                if not rel:
                    return  # a network share that blinked: try again at the next poll
                continue  # a subfolder removed: its parts are gone with it
            known = self._listings.get(rel)
            if known is None or known.mtime != mtime or full:
                known = self._list(rel, folder, mtime, now) or known
                listed = True
            if known is None:
                continue
            visited.add(rel)
            if self.recursive:
                queue.extend(f"{rel}/{name}" if rel else name for name in known.subfolders)
        self._restat(now)
        if not listed and visited == set(self._listings):
            return
        self._listings = {rel: v for rel, v in self._listings.items() if rel in visited}
        present = set().union(*(v.files for v in self._listings.values()))
        # remember only what is still there: a service that runs for months while a cron job
        # clears the folder keeps a bounded set, and a file deleted before it was read (the
        # writer took a bad capture back) is no part
        self.skip &= {os.path.splitext(name)[0] for name in present}
        for key in list(self._pending):
            arrival = self._pending[key]
            arrival.files = {k: v for k, v in arrival.files.items() if self._relative(v) in present}
            if not arrival.files:
                del self._pending[key]

    def _list(self, rel: str, folder: Path, mtime: int, now: float) -> _Listing | None:
        """List one folder of the tree: note its part files (new ones become pending parts)
        and subfolders. None when it cannot be listed now (a share that blinked)."""
        prefix = f"{rel}/" if rel else ""
        listing = _Listing(mtime, set(), [])  # names, not Paths: a large folder stays cheap
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if self.recursive and not entry.name.startswith("."):
                        try:
                            if entry.is_dir(follow_symlinks=False):  # no link loops
                                listing.subfolders.append(entry.name)
                                continue
                        except OSError:
                            continue
                    hit = hot_folder_file(entry.name)
                    if hit is None or hit[1] not in self.modalities:
                        continue  # a sensor this line has not (an image line's .csv logs)
                    stem, kind = hit
                    key = prefix + stem
                    listing.files.add(prefix + entry.name)
                    if key in self.skip:
                        continue
                    try:
                        st = entry.stat()
                    except OSError:
                        continue  # removed between listing and stat
                    path = Path(entry.path)
                    arrival = self._pending.setdefault(key, _Arrival(now, {}, {}, {}))
                    arrival.files.setdefault(kind, path)
                    arrival.observe(path, st, now)
        except OSError:
            return None
        self._listings[rel] = listing
        return listing

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def _restat(self, now: float) -> None:
        pending = self._pending
        for stem in list(pending):
            arrival = pending[stem]
            for kind, path in list(arrival.files.items()):
                if arrival.seen_at.get(path) == now:
                    continue  # listed and stat-ed in this very poll
                try:
                    st = path.stat()
                except OSError:
                    del arrival.files[kind]  # deleted before it was read: not part of it
                    continue
                arrival.observe(path, st, now)
            if not arrival.files:
                del pending[stem]

    def _ready(self, arrival: _Arrival, now: float) -> bool:
        timed_out = now - arrival.first_seen >= self.pair_timeout_s
        settled = all(  # an empty file may be a writer about to start: wait, then read it
            now - arrival.steady_since[p] >= self.settle_s and (arrival.sizes[p][0] or timed_out)
            for p in arrival.files.values()
        )
        complete = all(m in arrival.files for m in self.modalities)
        return settled and (complete or timed_out)

    def _load(self, stem: str, arrival: _Arrival) -> Sample:
        first = min(arrival.files.values())
        try:
            stamp = first.stat().st_mtime
        except OSError:
            stamp = time.time()
        sample = Sample(
            part_id=stem, timestamp=stamp, meta={"source": f"{self.name}/{self._relative(first)}"}
        )
        problems: list[str] = []
        for modality in self.modalities:
            path = arrival.files.get(modality)
            if path is None:
                problems.append(
                    f"no {modality} file for part {stem} in {self.folder} within "
                    f"{self.pair_timeout_s:g} s of {first.name}"
                )
                continue
            try:
                if modality == "image":
                    sample.frame = self.frames.read(path)
                else:
                    sample.vibration = read_vibration(path, sample_rate_hz=self.sample_rate_hz)
            except DataError as exc:
                problems.append(str(exc))
        if problems:
            sample.fault = "; ".join(problems)
        return sample


def open_source(
    spec: str,
    vibration: str | None = None,
    skip_part_ids: Collection[str] = (),
    window_s: float | None = None,
    watch: bool = False,
    modalities: Collection[str] = (),
    sample_rate_hz: float | None = None,
    settle_s: float = HOT_FOLDER_SETTLE_S,
    idle_exit_s: float | None = None,
    frames: FrameFormat | None = None,
    recursive: bool = False,
) -> DatasetReplay | CameraLine | HotFolder:
    """SRC of `inspect-app serve --source SRC`: a dataset folder, a video file or a camera, or
    with `watch` a hot folder whose parts bring the line's `modalities`. Frames are read as the
    line reads them (`frames`: its 16-bit depth for image files, a camera's frames come as
    8-bit already; its region for every frame). `recursive` watches a hot folder's subfolders
    too.

    A folder is replayed (skipping `skip_part_ids`); a digit is an OpenCV camera index; a URL,
    GStreamer pipeline or video file is opened with OpenCV and paired with `vibration`.
    """
    path = Path(spec)
    if recursive and not watch:
        msg = "--recursive watches a hot folder's subfolders: it needs --watch"
        raise ValueError(msg)
    if watch:
        if vibration is not None:
            msg = "--vibration is for a camera or video source; a hot folder holds its own"
            raise ValueError(msg)
        if window_s is not None:
            msg = "--window-s does not apply to a hot folder: each vibration file is one part's"
            raise ValueError(msg)
        if (path / "labels.csv").is_file():
            msg = f"{spec} holds a labels.csv: it is a dataset to replay; drop --watch"
            raise ValueError(msg)
        return HotFolder(
            path,
            modalities,
            skip_part_ids=skip_part_ids,
            sample_rate_hz=sample_rate_hz,
            settle_s=settle_s,
            idle_stop_s=idle_exit_s,
            frames=frames,
            recursive=recursive,
        )
    if path.is_dir():
        if vibration is not None:
            msg = f"--vibration is for a camera or video source; {spec} is a dataset folder"
            raise ValueError(msg)
        return DatasetReplay(path, skip_part_ids=skip_part_ids, window_s=window_s, frames=frames)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        msg = f"source {spec} is a single image; give the dataset folder that holds it"
        raise ValueError(msg)
    camera: str | int = int(spec) if spec.isdigit() else spec
    if not (is_live(camera) or path.suffix.lower() in VIDEO_SUFFIXES):
        msg = (
            f"source {spec!r} is neither a dataset folder, a video file "
            f"({', '.join(sorted(VIDEO_SUFFIXES))}), a camera index, an RTSP/HTTP URL nor a "
            "GStreamer pipeline"
        )
        raise ValueError(msg)
    return CameraLine(
        camera,
        vibration=vibration,
        window_s=window_s or 1.0,
        sample_rate_hz=sample_rate_hz,
        frames=frames,
    )


def check_sensors(source: DatasetReplay | CameraLine | HotFolder, line: str, card: Any) -> None:
    """Refuse (and close) a camera source without vibration for a line whose card was taught
    on vibration: every part would be a FAULT. A dataset folder says per part what it holds."""
    problem = sensor_mismatch(source, line, card)
    if problem is not None:
        source.close()
        raise ValueError(problem)


def sensor_mismatch(source: object, line: str, card: Any) -> str | None:
    """Why `source` cannot feed a line taught as `card` says (`check_sensors`), or None; the
    source is left as it is."""
    if not isinstance(source, CameraLine) or source.vibration is not None:
        return None
    modalities = list(card.modalities)
    if "vibration" not in modalities:
        return None
    return (
        f"line {line} is taught on {' and '.join(modalities)}: the camera source "
        f"{source.name!r} needs --vibration (the recording or device its parts' vibration "
        "comes from)"
    )
