"""Camera input: one image reader, and frame sources (OpenCV capture, image folder).

`read_image` turns any PNG / JPEG / BMP / TIFF (gray, color, 8 or 16 bit) into RGB uint8 and
refuses corrupt or truncated files with a `DataError` naming the file — OpenCV alone would decode
a truncated JPEG into a half-gray picture without complaint. Machine-vision cameras save 10, 12
or 14-bit samples in 16-bit files (Mono12 as 0..4095); read as 16-bit such a frame is nearly
black, so a line records the bits its frames fill (`image_sample_bits`, at adapt) and reads
every frame with them. A line's `Roi` (region of interest) crops its frames as they are read.
`FrameFormat` holds both: how one line's frames are read from files.

Sources are context-managed iterators of `Frame`. `CaptureSource` wraps `cv2.VideoCapture`
(device index, video file, RTSP URL or GStreamer pipeline). A live source that stops delivering
is reconnected with bounded exponential backoff; every interruption is recorded as a
`CameraGap` (counted, logged, passed to `on_gap`) so the pipeline can show it; no call blocks
longer than its timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import cv2
import numpy as np

from sensors.errors import DataError
from sensors.sample import same_values

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# the sample depths cameras write into 16-bit files (Mono10, Mono12, Mono14, Mono16)
SAMPLE_BITS = (10, 12, 14, 16)


@dataclass(frozen=True)
class Roi:
    """A line's region of interest: the rectangle of the camera's frame that holds the part,
    in pixels (`x`, `y` of its top-left corner, `w` x `h`). Frames and masks are cropped to it
    as they are read, so the model spends its few pixels on the part instead of the conveyor
    around it, and every heat-map, box and snapshot is of the region."""

    x: int
    y: int
    w: int
    h: int

    MIN_SIDE = 8  # pixels: one patch

    def __post_init__(self) -> None:
        if self.x < 0 or self.y < 0 or self.w < self.MIN_SIDE or self.h < self.MIN_SIDE:
            msg = (
                f"region of interest {self}: x and y must be 0 or more, width and height at "
                f"least {self.MIN_SIDE} px"
            )
            raise ValueError(msg)

    @classmethod
    def parse(cls, text: str) -> Roi:
        """`X,Y,W,H` in pixels of the frame as the camera takes it (`400,300,1200,1000`)."""
        fields = [f.strip() for f in text.split(",")]
        if len(fields) != 4 or not all(f.isdigit() for f in fields):
            msg = (
                f"region of interest {text!r}: expected X,Y,W,H, four whole numbers of pixels "
                "(the top-left corner, then width and height), e.g. 400,300,1200,1000"
            )
            raise ValueError(msg)
        x, y, w, h = (int(f) for f in fields)
        return cls(x, y, w, h)

    @classmethod
    def from_list(cls, values: list[int] | None) -> Roi | None:
        """A line card's `roi` ([x, y, w, h], None for the whole frame)."""
        return None if values is None else cls(*(int(v) for v in values))

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def crop(self, image: np.ndarray, source: str | Path | None = None) -> np.ndarray:
        """The region of `image` (a frame or a mask); `DataError` naming `source` when the
        frame does not hold it (another camera or resolution: never judged on a wrong crop)."""
        h, w = image.shape[:2]
        if self.x + self.w > w or self.y + self.h > h:
            msg = (
                f"frame is {w}x{h} px: the line's region of interest ({self}) does not fit in "
                "it; was the camera or its resolution changed?"
            )
            raise DataError(msg, source)
        return np.ascontiguousarray(image[self.y : self.y + self.h, self.x : self.x + self.w])

    def __str__(self) -> str:
        return f"{self.w}x{self.h} px at x {self.x}, y {self.y}"


def read_image(path: str | Path, bits: int | None = None) -> np.ndarray:
    """Read an image file as RGB uint8 `(H, W, 3)`; gray is expanded, alpha dropped.

    `bits`: how many of a 16-bit file's bits its samples fill (a line's `image_bits`; 12 for
    Mono12): 0 .. 2**bits - 1 becomes 0 .. 255, anything brighter saturates at 255. None: the
    file's PNG `sBIT` chunk when it has one, else all 16. 8-bit files ignore it.
    Raises `DataError` naming the file when it is missing, not an image, corrupt or truncated.
    """
    path = Path(path)
    data = _read_bytes(path)
    image = _decode(path, data)
    if image.dtype == np.uint16:
        shift = (bits or _png_significant_bits(data) or 16) - 8
        if shift != 8:
            image = np.minimum(image >> shift, 255).astype(np.uint8)
    return _to_rgb8(path, image)


@dataclass(frozen=True)
class FrameFormat:
    """How a line's frames are read: the bits its 16-bit files' samples fill (`read_image`;
    None: a file's `sBIT`, else all 16) and the region every frame is cropped to (None: the
    whole frame). The default reads a frame as it is, as anything without a line does."""

    bits: int | None = None
    roi: Roi | None = None

    @classmethod
    def of_line(cls, image_bits: int | None, roi: list[int] | None) -> FrameFormat:
        """From a line card's `image_bits` and `roi` ([x, y, w, h])."""
        return cls(image_bits, Roi.from_list(roi))

    def read(self, path: str | Path) -> np.ndarray:
        """The frame in `path` as the line sees it; `DataError` naming the file when it cannot
        be read or the region does not fit in it."""
        return self.crop(read_image(path, self.bits), path)

    def crop(self, image: np.ndarray, source: str | Path | None = None) -> np.ndarray:
        """`image` (a frame or a mask read whole) cut to the region, if the line has one."""
        return image if self.roi is None else self.roi.crop(image, source)


def image_sample_bits(path: str | Path) -> int:
    """How many bits an image file's samples fill: 8 for an 8-bit (or float) image; for a
    16-bit one its PNG `sBIT` value when it has one, else the smallest of `SAMPLE_BITS` that
    holds its brightest sample (a Mono12 frame: 12). A JPEG, BMP or 8-bit PNG says 8 in its
    header and is not decoded (adapt reads its frames next, and would decode each one twice).
    Raises `DataError` as `read_image` does for a file that is missing or not an image.
    """
    path = Path(path)
    data = _read_bytes(path)
    if _eight_bit_header(data):
        return 8
    image = _decode(path, data)
    if image.dtype != np.uint16:
        return 8
    significant = _png_significant_bits(data)
    if significant:
        return significant
    top = int(image[..., :3].max()) if image.ndim == 3 else int(image.max())
    return next(b for b in SAMPLE_BITS if top < 1 << b)


# any depth (16-bit kept) and colour, turned upright by the file's EXIF orientation as every
# viewer shows it (IMREAD_UNCHANGED ignores it: a phone photo taken upright would be read lying
# on its side, and a mask drawn on the upright picture refused as the wrong size); alpha dropped
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR


def _decode(path: Path, data: bytes, what: str = "image") -> np.ndarray:
    _check_complete(path, data)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _DECODE_FLAGS)
    if image is None or image.size == 0:
        raise DataError(f"unreadable {what}: corrupt or not PNG/JPEG/BMP/TIFF", path)
    return image


def _eight_bit_header(data: bytes) -> bool:
    """True when the file's header alone says 8-bit samples: a BMP, a PNG whose IHDR bit depth
    is 8 or less, a JPEG whose frame header says 8-bit precision (not a 12-bit JPEG)."""
    if data[:2] == b"BM":
        return True
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return data[12:16] == b"IHDR" and len(data) > 24 and data[24] <= 8
    return data[:2] == b"\xff\xd8" and _jpeg_precision(data) == 8


def _jpeg_precision(data: bytes) -> int | None:
    """The sample precision in a JPEG's start-of-frame segment, or None where none is found."""
    at = 2
    while at + 4 < len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOF0..SOF15
            return data[at + 4]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def _png_significant_bits(data: bytes) -> int | None:
    """The largest colour value of a 16-bit PNG's `sBIT` chunk (the bits the writer filled),
    or None: not a PNG, or no such chunk before the image data."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    at = 8
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if kind == b"sBIT":
            values = data[at + 8 : at + 8 + min(length, 3)]  # gray, or R G B; alpha is not read
            top = max(values, default=0)
            return top if 8 < top <= 16 else None
        if kind in (b"IDAT", b"IEND"):
            return None
        at += 12 + length
    return None


def read_mask(path: str | Path) -> np.ndarray:
    """Read a defect mask image as bool `(H, W)`: nonzero (in any channel) is defect."""
    path = Path(path)
    image = _decode(path, _read_bytes(path), "mask image")
    if image.ndim == 3:
        return np.any(image[..., :3] != 0, axis=2)
    return image != 0


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read file ({exc.strerror})", path) from exc


def _check_complete(path: Path, data: bytes) -> None:
    """Catch truncation that decoders forgive: a JPEG must end at EOI, a PNG at IEND."""
    if data[:3] == b"\xff\xd8\xff":
        if b"\xff\xd9" not in data[-64:]:  # EOI, allowing a little trailing padding
            raise DataError("corrupt or truncated JPEG: no end-of-image marker", path)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-32:]:
            raise DataError("corrupt or truncated PNG: no IEND chunk", path)
    elif not data:
        raise DataError("empty image file", path)


def _to_rgb8(path: Path, image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:  # full scale; read_image has scaled fewer bits already
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"unsupported image sample type {image.dtype}", path)
    if image.ndim == 2:  # cvtColor: 20 times faster than np.repeat on a 5-megapixel frame
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise DataError(f"unsupported image with {channels} channels", path)


# --- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One camera frame. `image` is None (and `fault` says why) when a file could not be read."""

    image: np.ndarray | None
    timestamp: float
    index: int
    source: str = ""
    fault: str | None = None


@dataclass(frozen=True)
class CameraGap:
    """An interruption of a live camera: when it began and ended, how many reopen attempts."""

    started_at: float
    ended_at: float | None
    attempts: int
    reason: str

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass
class CameraStats:
    """Counters a pipeline can show: frames delivered, failed reads, reconnects, gaps."""

    frames: int = 0
    failed_reads: int = 0
    reconnects: int = 0
    gaps: list[CameraGap] = field(default_factory=list)
    repeated_frames: int = 0  # frames identical to the one before (a frozen feed)


@dataclass(frozen=True)
class Backoff:
    """Reconnect schedule: delays grow by `factor` from `initial_s` to `max_s`; give up after
    `max_attempts` failed reopenings in a row (the source then raises `CameraLost`)."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    max_attempts: int = 8

    def delays(self) -> Iterator[float]:
        delay = self.initial_s
        for _ in range(self.max_attempts):
            yield delay
            delay = min(delay * self.factor, self.max_s)


class CameraLost(DataError):
    """A live camera stayed unreachable through the whole backoff schedule."""


class VideoCaptureLike(Protocol):
    """The part of `cv2.VideoCapture` a source uses; tests inject fakes at this boundary."""

    def isOpened(self) -> bool: ...  # OpenCV's name

    def read(self) -> tuple[bool, Any]: ...

    def release(self) -> None: ...


CaptureSpec = int | str


def open_video_capture(spec: CaptureSpec, timeout_s: float = 5.0) -> VideoCaptureLike:
    """Open `cv2.VideoCapture` for a device index, file, RTSP URL or GStreamer pipeline.

    Open and read timeouts are set where the backend supports them (FFmpeg: files and RTSP).
    """
    ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    if isinstance(spec, int):
        return cv2.VideoCapture(spec)
    if is_gstreamer_pipeline(spec):
        return cv2.VideoCapture(spec, cv2.CAP_GSTREAMER)
    if spec.isdigit():
        return cv2.VideoCapture(int(spec))
    return cv2.VideoCapture(spec, cv2.CAP_ANY, params)


def is_gstreamer_pipeline(spec: str) -> bool:
    return "!" in spec and "appsink" in spec


def is_live(spec: CaptureSpec) -> bool:
    """Devices, network streams and pipelines are live (reconnect); files end."""
    if isinstance(spec, int) or spec.isdigit():
        return True
    lowered = spec.lower()
    return is_gstreamer_pipeline(spec) or lowered.startswith(
        ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")
    )


class CaptureSource:
    """Frames from an OpenCV capture, as a context-managed iterator of `Frame`.

    A live source (device, RTSP, GStreamer) that fails a read or stops opening is released and
    reopened on the `backoff` schedule; the interruption is recorded in `stats.gaps`, logged,
    and passed to `on_gap`. After `backoff.max_attempts` failed reopenings it raises
    `CameraLost`. A file source simply ends. Each read waits at most `read_timeout_s`.

    A live source whose frames have stayed identical, pixel for pixel, for `frozen_reopen_s`
    (a stalled driver or stream handing out its last frame: reads succeed, so nothing above
    catches it) is reopened the same way, with the gap's reason saying so. The frozen frames
    are still delivered (a line's part behind each becomes a FAULT, never lost);
    `stats.repeated_frames` counts them. 0 turns this off.

    >>> with CaptureSource("rtsp://10.0.0.5/stream") as cam:
    ...     for frame in cam: ...
    """

    def __init__(
        self,
        spec: CaptureSpec,
        live: bool | None = None,
        backoff: Backoff | None = None,
        read_timeout_s: float = 5.0,
        on_gap: Callable[[CameraGap], None] | None = None,
        capture_factory: Callable[[CaptureSpec], VideoCaptureLike] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        frozen_reopen_s: float = 5.0,
    ) -> None:
        self.spec = spec
        self.frozen_reopen_s = frozen_reopen_s
        self._last: np.ndarray | None = None
        self._same_since: float | None = None  # when the frames stopped changing
        self.live = is_live(spec) if live is None else live
        self.backoff = backoff or Backoff()
        self.read_timeout_s = read_timeout_s
        self.on_gap = on_gap
        self.stats = CameraStats()
        self._factory = capture_factory or (lambda s: open_video_capture(s, read_timeout_s))
        self._clock = clock
        self._sleep = sleep
        self._capture: VideoCaptureLike | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return str(self.spec)

    def open(self) -> None:
        capture = self._factory(self.spec)
        if not capture.isOpened():
            capture.release()
            if not self.live:
                raise DataError("cannot open video source", self.name)
            self._reconnect("could not open")
            return
        self._capture = capture

    def close(self) -> None:
        self._closed = True
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> CaptureSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        if self._capture is None:
            self.open()
        if self._frozen_too_long():
            self._same_since = None
            self._reconnect(f"frozen: every frame identical for {self.frozen_reopen_s:g} s")
        while True:
            capture = self._capture
            ok, image = (False, None) if capture is None else self._read_with_timeout(capture)
            if ok and image is not None:
                frame = Frame(
                    image=_to_rgb8(Path(self.name), np.asarray(image)),
                    timestamp=self._clock(),
                    index=self.stats.frames,
                    source=self.name,
                )
                self.stats.frames += 1
                self._watch_frozen(frame)
                return frame
            self.stats.failed_reads += 1
            if not self.live:
                self.close()
                raise StopIteration
            self._reconnect("read failed or timed out")

    def _watch_frozen(self, frame: Frame) -> None:
        """Note whether `frame` repeats the one before (live sources only)."""
        if not (self.live and self.frozen_reopen_s > 0) or frame.image is None:
            return
        if self._last is not None and same_values(frame.image, self._last):
            self.stats.repeated_frames += 1
            if self._same_since is None:
                self._same_since = frame.timestamp
        else:
            self._same_since = None
        self._last = frame.image

    def _frozen_too_long(self) -> bool:
        return (
            self._same_since is not None
            and self._clock() - self._same_since >= self.frozen_reopen_s
        )

    def _read_with_timeout(self, capture: VideoCaptureLike) -> tuple[bool, Any]:
        """`capture.read()` in a helper thread so a hung driver cannot block the caller."""
        result: list[tuple[bool, Any]] = []
        worker = threading.Thread(target=lambda: result.append(capture.read()), daemon=True)
        worker.start()
        worker.join(self.read_timeout_s)
        if worker.is_alive() or not result:
            return False, None
        return result[0]

    def _reconnect(self, reason: str) -> None:
        started = self._clock()
        log.warning("camera %s: %s; reconnecting", self.name, reason)
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        attempts = 0
        for delay in self.backoff.delays():
            attempts += 1
            self._sleep(delay)
            capture = self._factory(self.spec)
            if capture.isOpened():
                self._capture = capture
                self.stats.reconnects += 1
                self._record_gap(CameraGap(started, self._clock(), attempts, reason))
                log.warning("camera %s: back after %d attempt(s)", self.name, attempts)
                return
            capture.release()
        self._record_gap(CameraGap(started, None, attempts, reason))
        msg = f"camera lost: {reason}; {attempts} reconnect attempts failed"
        raise CameraLost(msg, self.name)

    def _record_gap(self, gap: CameraGap) -> None:
        self.stats.gaps.append(gap)
        if self.on_gap is not None:
            self.on_gap(gap)


class ImageFolderSource:
    """Frames from the images in a folder, in name order (a camera stand-in for replay).

    An unreadable file yields a `Frame` with `image=None` and `fault` set (strict=False), or
    raises its `DataError` (strict=True): it is never skipped.
    """

    def __init__(self, folder: str | Path, strict: bool = False, loop: bool = False) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError("image folder not found", self.folder)
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder", self.folder)
        self.strict = strict
        self.loop = loop
        self._next = 0
        self._count = 0

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self._next >= len(self.files):
            if not self.loop:
                raise StopIteration
            self._next = 0
        path = self.files[self._next]
        self._next += 1
        index = self._count
        self._count += 1
        try:
            image = read_image(path)
        except DataError as exc:
            if self.strict:
                raise
            return Frame(None, time.time(), index, str(path), fault=str(exc))
        return Frame(image, time.time(), index, str(path))

    def close(self) -> None:
        self._next = len(self.files)
        self.loop = False

    def __enter__(self) -> ImageFolderSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
