"""Image reading and camera sources: formats, refusals, reconnection with a fake capture."""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensors import camera
from sensors.camera import (
    Backoff,
    CameraGap,
    CameraLost,
    CaptureSource,
    FrameFormat,
    ImageFolderSource,
    Roi,
    image_sample_bits,
    is_live,
    read_image,
    read_mask,
)
from sensors.errors import DataError


def color_image() -> np.ndarray:
    """BGR test card (OpenCV order on disk): a red, a green and a blue band."""
    image = np.zeros((24, 30, 3), dtype=np.uint8)
    image[:8, :, 2] = 255  # red in BGR
    image[8:16, :, 1] = 255
    image[16:, :, 0] = 255
    return image


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
def test_color_formats_read_as_rgb(write_image: Callable[..., Path], suffix: str) -> None:
    rgb = read_image(write_image(f"c{suffix}", color_image()))
    assert rgb.dtype == np.uint8 and rgb.shape == (24, 30, 3)
    top, middle, bottom = rgb[4, 15], rgb[12, 15], rgb[20, 15]
    assert top[0] > 200 and top[1] < 60 and top[2] < 60  # red first: RGB, not BGR
    assert middle[1] > 200 and bottom[2] > 200


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
def test_gray_is_expanded_to_three_channels(write_image: Callable[..., Path], suffix: str) -> None:
    gray = np.tile(np.arange(0, 240, 10, dtype=np.uint8), (16, 1))
    rgb = read_image(write_image(f"g{suffix}", gray))
    assert rgb.shape == (16, 24, 3)
    assert np.array_equal(rgb[..., 0], rgb[..., 2])
    assert abs(int(rgb[3, 10, 1]) - 100) <= 3


def with_sbit(png: Path, *bits: int) -> Path:
    """Insert a PNG sBIT chunk (the writer's significant bits per colour) after IHDR."""
    data = png.read_bytes()
    body = b"sBIT" + bytes(bits)
    chunk = len(bits).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    png.write_bytes(data[:33] + chunk + data[33:])  # signature 8 + IHDR 25
    return png


def test_twelve_bit_frames_in_sixteen_bit_files(write_image: Callable[..., Path]) -> None:
    """Mono12 saved in 16-bit files (0..4095): read as 16-bit such a frame is nearly black;
    with the bits it fills it reads as the 8-bit frame; brighter samples saturate."""
    gray8 = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (6, 1))
    gray12 = (gray8.astype(np.uint16) << 4) | (gray8 >> 4)  # 0..4095
    path = write_image("mono12.png", gray12)
    assert read_image(path).max() == 4095 >> 8  # as 16-bit: 0..15, a black frame
    assert np.array_equal(read_image(path, bits=12)[..., 0], gray8)
    assert image_sample_bits(path) == 12
    brighter = write_image("over.png", np.full((4, 4), 9000, dtype=np.uint16))
    assert read_image(brighter, bits=12).min() == 255
    assert image_sample_bits(brighter) == 14
    tif = write_image("mono10.tif", np.full((4, 4), 1000, dtype=np.uint16))
    assert image_sample_bits(tif) == 10 and read_image(tif, bits=10)[0, 0, 0] == 1000 >> 2
    assert image_sample_bits(write_image("g8.png", gray8)) == 8
    assert image_sample_bits(write_image("full.png", np.full((4, 4), 60000, np.uint16))) == 16


def test_an_eight_bit_file_says_its_depth_in_its_header(write_image: Callable[..., Path]) -> None:
    """adapt asks each frame's depth and then reads it: an 8-bit file answers from its header,
    without a second decode; a 12-bit JPEG's header is not taken for 8."""
    png = write_image("g8.png", np.full((40, 40), 7, np.uint8))
    png.write_bytes(png.read_bytes()[:40])  # the header, and a cut-off body
    assert image_sample_bits(png) == 8
    with pytest.raises(DataError, match=r"g8\.png"):
        read_image(png)  # the read that follows finds what is wrong with it
    jpeg = write_image("part.jpg", color_image()).read_bytes()
    assert camera._eight_bit_header(jpeg)
    sof = jpeg.index(b"\xff\xc0")
    twelve = jpeg[: sof + 4] + bytes([12]) + jpeg[sof + 5 :]
    assert not camera._eight_bit_header(twelve)


def test_a_png_sbit_chunk_says_how_many_bits_are_filled(write_image: Callable[..., Path]) -> None:
    dim = np.full((4, 4), 400, dtype=np.uint16)  # a dark 12-bit frame: its maximum says 10
    tagged = with_sbit(write_image("tagged.png", dim), 12)
    assert image_sample_bits(tagged) == 12
    assert read_image(tagged)[0, 0, 0] == 400 >> 4  # the file's own 12 bits, no line needed
    assert read_image(tagged, bits=16)[0, 0, 0] == 400 >> 8  # a line's bits come first
    color = np.full((4, 4, 3), 3000, dtype=np.uint16)
    assert image_sample_bits(with_sbit(write_image("rgb.png", color), 12, 12, 12)) == 12
    assert image_sample_bits(with_sbit(write_image("eight.png", dim), 8)) == 10  # not a depth


def test_a_region_of_interest_is_parsed_checked_and_cropped() -> None:
    roi = Roi.parse(" 4, 2,16 ,8")
    assert roi == Roi(4, 2, 16, 8) and roi.as_list() == [4, 2, 16, 8]
    assert Roi.from_list([4, 2, 16, 8]) == roi and Roi.from_list(None) is None
    frame = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)
    assert np.array_equal(roi.crop(frame), frame[2:10, 4:20])
    with pytest.raises(DataError, match=r"cam 3: frame is 19x12 px: .*16x8 px at x 4, y 2"):
        roi.crop(frame[:, :19], "cam 3")
    for text in ("4,2,16", "4,2,16,8,1", "a,2,16,8", "-4,2,16,8", "4.5,2,16,8"):
        with pytest.raises(ValueError, match="X,Y,W,H"):
            Roi.parse(text)
    with pytest.raises(ValueError, match="at least 8 px"):
        Roi.parse("0,0,4,100")


def test_a_line_frame_format_reads_its_depth_and_crops_its_region(
    write_image: Callable[..., Path],
) -> None:
    gray8 = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)
    path = write_image("mono12.png", gray8.astype(np.uint16) << 4)
    line = FrameFormat.of_line(12, [4, 2, 16, 8])
    assert line == FrameFormat(12, Roi(4, 2, 16, 8))
    assert np.array_equal(line.read(path)[..., 0], gray8[2:10, 4:20])
    assert FrameFormat().read(path).max() == gray8.max() >> 4  # without a line: as the file is
    assert FrameFormat.of_line(None, None) == FrameFormat()
    with pytest.raises(DataError, match=r"small.png.*frame is 12x6 px"):
        line.read(write_image("small.png", np.zeros((6, 12), np.uint16)))


def with_exif_orientation(jpeg: Path, orientation: int) -> Path:
    """Insert an EXIF block whose Orientation tag is `orientation` (6: turn 90 degrees right
    to view, as a phone held upright writes it) after the JPEG's start-of-image marker."""
    entry = struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)
    app1 = b"\xff\xe1" + struct.pack(">H", 8 + len(tiff)) + b"Exif\x00\x00" + tiff
    data = jpeg.read_bytes()
    jpeg.write_bytes(data[:2] + app1 + data[2:])
    return jpeg


def test_a_photo_is_read_upright_as_its_exif_orientation_says(
    write_image: Callable[..., Path],
) -> None:
    stored = np.zeros((10, 20, 3), np.uint8)
    stored[:, :5] = 255  # stored lying down: a white band at the left
    photo = with_exif_orientation(write_image("phone.jpg", stored), 6)
    upright = read_image(photo)
    assert upright.shape == (20, 10, 3)  # as every viewer shows it
    assert upright[:5].mean() > 200 and upright[-5:].mean() < 50  # the band now at the top
    assert image_sample_bits(photo) == 8


def test_sixteen_bit_and_alpha(write_image: Callable[..., Path]) -> None:
    deep = np.full((8, 8), 40000, dtype=np.uint16)
    assert read_image(write_image("d.png", deep))[0, 0, 0] == 40000 >> 8
    bgra = np.zeros((8, 8, 4), dtype=np.uint8)
    bgra[..., 2] = 200
    bgra[..., 3] = 10
    rgba = read_image(write_image("a.png", bgra))
    assert rgba.shape == (8, 8, 3) and rgba[0, 0, 0] == 200


def test_truncated_jpeg_is_refused_naming_the_file(write_image: Callable[..., Path]) -> None:
    path = write_image("part.jpg", color_image())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated JPEG") as err:
        read_image(path)
    assert "part.jpg" in str(err.value)


def test_corrupt_bytes_truncated_png_missing_file(
    tmp_path: Path, write_image: Callable[..., Path]
) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff" + b"\x00" * 100 + b"\xff\xd9")
    with pytest.raises(DataError, match=r"junk\.jpg"):
        read_image(junk)
    png = write_image("p.png", color_image())
    png.write_bytes(png.read_bytes()[:-20])
    with pytest.raises(DataError, match="truncated PNG"):
        read_image(png)
    with pytest.raises(DataError, match="file not found"):
        read_image(tmp_path / "nope.png")
    empty = tmp_path / "empty.bmp"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_image(empty)


def test_mask_reads_nonzero_as_defect(write_image: Callable[..., Path]) -> None:
    mask = np.zeros((10, 12), dtype=np.uint8)
    mask[2:4, 5:9] = 255
    out = read_mask(write_image("m.png", mask))
    assert out.dtype == bool and out.sum() == 8 and out[3, 8] and not out[0, 0]


def test_image_folder_source_reports_a_bad_file_as_a_fault(
    tmp_path: Path, write_image: Callable[..., Path]
) -> None:
    write_image("cam/a.png", color_image())
    bad = write_image("cam/b.jpg", color_image())
    bad.write_bytes(bad.read_bytes()[:100])
    write_image("cam/c.png", color_image())
    with ImageFolderSource(tmp_path / "cam") as source:
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[1].image is None and frames[1].fault is not None and "b.jpg" in frames[1].fault
    assert frames[2].image is not None
    with pytest.raises(DataError, match=r"b\.jpg"):
        list(ImageFolderSource(tmp_path / "cam", strict=True))


# --- live capture, with a fake at the OpenCV boundary -------------------------------------------


class FakeCapture:
    """Delivers `frames` good reads, then fails every read (the cable is pulled)."""

    def __init__(self, frames: int, opens: bool = True, hang: threading.Event | None = None):
        self.frames = frames
        self.opens = opens
        self.hang = hang
        self.released = False

    def isOpened(self) -> bool:
        return self.opens

    def read(self) -> tuple[bool, Any]:
        if self.hang is not None:
            self.hang.wait(5)
            return False, None
        if self.frames <= 0:
            return False, None
        self.frames -= 1
        return True, np.zeros((4, 4, 3), dtype=np.uint8)

    def release(self) -> None:
        self.released = True


class FakeCamera:
    """A factory handing out captures from a script: each open takes the next entry."""

    def __init__(self, script: list[FakeCapture]) -> None:
        self.script = script
        self.opened: list[FakeCapture] = []

    def __call__(self, spec: int | str) -> FakeCapture:
        capture = self.script.pop(0) if self.script else FakeCapture(0, opens=False)
        self.opened.append(capture)
        return capture


def test_camera_disappearing_mid_stream_is_reported_and_retried() -> None:
    # 3 frames, cable pulled; two failed reopen attempts; back with 2 frames; then gone for good
    camera = FakeCamera(
        [FakeCapture(3), FakeCapture(0, opens=False), FakeCapture(0, opens=False), FakeCapture(2)]
    )
    sleeps: list[float] = []
    gaps: list[CameraGap] = []
    source = CaptureSource(
        0,
        backoff=Backoff(initial_s=0.1, factor=2.0, max_s=0.3, max_attempts=4),
        on_gap=gaps.append,
        capture_factory=camera,
        sleep=sleeps.append,
    )
    frames = []
    with pytest.raises(CameraLost, match="4 reconnect attempts failed"), source:
        frames.extend(source)
    assert len(frames) == 5 and [f.index for f in frames] == list(range(5))
    assert frames[0].image is not None and frames[0].image.shape == (4, 4, 3)
    assert sleeps == [0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.3]  # bounded exponential backoff, twice
    assert len(gaps) == 2 and gaps == source.stats.gaps
    assert gaps[0].attempts == 3 and gaps[0].ended_at is not None
    assert gaps[1].attempts == 4 and gaps[1].ended_at is None  # lost: reported, not hidden
    assert source.stats.reconnects == 1 and source.stats.failed_reads == 2
    assert all(c.released for c in camera.opened)


def test_a_hung_read_times_out_instead_of_blocking() -> None:
    release = threading.Event()
    camera = FakeCamera([FakeCapture(1, hang=release), FakeCapture(1)])
    source = CaptureSource(
        "rtsp://camera/stream",
        read_timeout_s=0.05,
        backoff=Backoff(initial_s=0.0, max_attempts=1),
        capture_factory=camera,
        sleep=lambda s: None,
    )
    with source:
        frame = next(source)
    release.set()
    assert frame.index == 0 and source.stats.failed_reads == 1 and source.stats.reconnects == 1


class FrozenCapture(FakeCapture):
    """Live frames (each its own noise) for `live` reads, then the last one again and again:
    a stalled driver or stream whose reads still succeed."""

    def __init__(self, live: int, frozen: int) -> None:
        super().__init__(live + frozen)
        self.live = live
        self.rng = np.random.default_rng(live)
        self.last = np.zeros((4, 4, 3), np.uint8)

    def read(self) -> tuple[bool, Any]:
        ok, _ = super().read()
        if ok and self.live > 0:
            self.live -= 1
            self.last = self.rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        return ok, self.last.copy()


def test_a_live_feed_frozen_for_seconds_is_reopened_and_its_frames_still_delivered() -> None:
    """Frames every second; the stream freezes after 3 (its reads still succeed): each frozen
    frame is delivered and counted, and after 5 s of identical frames the camera is reopened
    with a gap that says why. A file source is never reopened for repeating."""
    now = iter(range(1000))
    camera = FakeCamera([FrozenCapture(3, 8), FrozenCapture(2, 0)])
    gaps: list[CameraGap] = []
    source = CaptureSource(
        "rtsp://camera/stream",
        backoff=Backoff(initial_s=0.0, max_attempts=1),
        on_gap=gaps.append,
        capture_factory=camera,
        clock=lambda: float(next(now)),
        sleep=lambda s: None,
    )
    with pytest.raises(CameraLost), source:
        frames = []
        for frame in source:
            frames.append(frame)
    frozen = [f for f in frames[3:] if f.image is not None and (f.image == frames[2].image).all()]
    assert 1 <= len(frozen) < 8  # reopened before the stalled stream ran out
    assert len(frames) == 3 + len(frozen) + 2  # the frozen frames delivered, then the new ones
    assert source.stats.repeated_frames == len(frozen)
    assert frozen[-1].timestamp - frames[2].timestamp >= 4  # about 5 s of identical frames
    assert source.stats.reconnects == 1 and len(camera.opened) == 3  # the third: lost for good
    assert gaps[0].reason == "frozen: every frame identical for 5 s" and gaps[0].ended_at
    still = CaptureSource("clip.mp4", capture_factory=FakeCamera([FrozenCapture(1, 20)]))
    with still:
        assert len(list(still)) == 21 and not still.stats.gaps and not still.stats.repeated_frames


def test_a_video_file_ends_and_an_unopenable_file_is_an_error() -> None:
    camera = FakeCamera([FakeCapture(2)])
    with CaptureSource("clip.mp4", capture_factory=camera) as source:
        assert len(list(source)) == 2
    assert not source.stats.gaps
    with (
        pytest.raises(DataError, match=r"clip\.mp4: cannot open"),
        CaptureSource("clip.mp4", capture_factory=FakeCamera([])),
    ):
        pass


def test_what_counts_as_live() -> None:
    assert is_live(0) and is_live("1") and is_live("rtsp://10.0.0.5/s")
    assert is_live("v4l2src device=/dev/video0 ! videoconvert ! appsink")
    assert not is_live("line3/clip.mp4")
