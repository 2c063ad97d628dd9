"""Where parts come from: a dataset folder replayed as a line, or a camera paired with vibration.

Every source is a context-managed iterator of `sensors.sample.Sample`. A part that cannot be read
comes out with `fault` set (it becomes a FAULT row), never dropped. `live` says whether the source
runs on its own clock (a camera: the pipeline drops under overload and counts it) or waits for
the pipeline (a file: nothing is dropped).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from sensors.camera import IMAGE_SUFFIXES, CaptureSource, is_live
from sensors.dataset import LineDataset
from sensors.errors import DataError
from sensors.sample import Sample
from sensors.vibration import VibrationReplay, read_vibration

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
    ) -> None:
        self.dataset = LineDataset.open(folder, window_s=window_s)
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
    ) -> None:
        self.camera = CaptureSource(spec)
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


def open_source(
    spec: str,
    vibration: str | None = None,
    skip_part_ids: Collection[str] = (),
    window_s: float | None = None,
) -> DatasetReplay | CameraLine:
    """SRC of `inspect-app serve --source SRC`: a dataset folder, a video file or a camera.

    A folder is replayed (skipping `skip_part_ids`); a digit is an OpenCV camera index; a URL,
    GStreamer pipeline or video file is opened with OpenCV and paired with `vibration`.
    """
    path = Path(spec)
    if path.is_dir():
        if vibration is not None:
            msg = f"--vibration is for a camera or video source; {spec} is a dataset folder"
            raise ValueError(msg)
        return DatasetReplay(path, skip_part_ids=skip_part_ids, window_s=window_s)
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
    return CameraLine(camera, vibration=vibration, window_s=window_s or 1.0)


def check_sensors(source: DatasetReplay | CameraLine, line: str, card: Any) -> None:
    """Refuse (and close) a camera source without vibration for a line whose card was taught
    on vibration: every part would be a FAULT. A dataset folder says per part what it holds."""
    if not isinstance(source, CameraLine) or source.vibration is not None:
        return
    modalities = list(card.modalities)
    if "vibration" in modalities:
        source.close()
        msg = (
            f"line {line} is taught on {' and '.join(modalities)}: the camera source "
            f"{source.name!r} needs --vibration (the recording or device its parts' vibration "
            "comes from)"
        )
        raise ValueError(msg)
