"""Vibration readers (WAV, .npy, .csv, .mat), their refusals, and the replay stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from sensors.errors import DataError
from sensors.sample import VibrationWindow
from sensors.vibration import VibrationReplay, VibrationSource, read_vibration

RATE = 8000


def tone(n: int = 800, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / RATE)


@pytest.mark.parametrize(
    ("bits", "is_float", "tol"),
    [
        (8, False, 1 / 100),
        (16, False, 1e-4),
        (24, False, 1e-6),
        (32, False, 1e-8),
        (32, True, 1e-7),
    ],
)
def test_wav_pcm_and_float_widths_decode_to_the_same_signal(
    write_wav: Callable[..., Path], bits: int, is_float: bool, tol: float
) -> None:
    x = tone()
    path = write_wav(f"t{bits}{is_float}.wav", x, rate=RATE, bits=bits, is_float=is_float)
    w = read_vibration(path)
    assert w.sample_rate_hz == RATE  # from the header, none given
    assert w.samples.dtype == np.float32 and w.samples.shape == x.shape
    np.testing.assert_allclose(w.samples, x, atol=tol)


def test_wav_float64_and_second_channel(write_wav: Callable[..., Path]) -> None:
    x = np.stack([tone(), -tone()], axis=1)
    path = write_wav("stereo.wav", x, bits=64, is_float=True)
    np.testing.assert_allclose(read_vibration(path, channel=1).samples, -tone(), atol=1e-6)
    with pytest.raises(DataError, match="channel 2 out of range"):
        read_vibration(path, channel=2)


def test_truncated_wav_names_the_file(write_wav: Callable[..., Path]) -> None:
    path = write_wav("cut.wav", tone(), bits=16)
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(DataError, match="truncated WAV") as err:
        read_vibration(path)
    assert "cut.wav" in str(err.value)


def test_wav_header_only_and_not_a_wav(tmp_path: Path, write_wav: Callable[..., Path]) -> None:
    path = write_wav("head.wav", tone(), bits=16)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError, match="truncated WAV"):
        read_vibration(path)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"hello world, not audio")
    with pytest.raises(DataError, match="not a WAV"):
        read_vibration(junk)


def test_wav_rate_disagreeing_with_the_table_is_refused(write_wav: Callable[..., Path]) -> None:
    path = write_wav("r.wav", tone(), rate=RATE)
    with pytest.raises(DataError, match="file says 8000"):
        read_vibration(path, sample_rate_hz=12000)


def test_npy_needs_a_rate_and_reads_columns(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    np.save(path, np.stack([tone(), 2 * tone()], axis=1))
    with pytest.raises(DataError, match="unknown sample rate") as err:
        read_vibration(path)
    assert "v.npy" in str(err.value)
    w = read_vibration(path, sample_rate_hz=RATE, channel="1")
    np.testing.assert_allclose(w.samples, 2 * tone(), atol=1e-6)
    np.save(path, tone()[None, :])  # (1, N) is one channel
    assert read_vibration(path, sample_rate_hz=RATE).samples.shape == (800,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_samples_are_refused(tmp_path: Path, bad: float) -> None:
    x = tone()
    x[123] = bad
    path = tmp_path / "bad.npy"
    np.save(path, x)
    with pytest.raises(DataError, match="first at sample 123") as err:
        read_vibration(path, sample_rate_hz=RATE)
    assert "bad.npy" in str(err.value)


def test_csv_one_column_and_t_a(tmp_path: Path) -> None:
    x = tone(200)
    one = tmp_path / "one.csv"
    one.write_text("a\n" + "\n".join(f"{v:.9f}" for v in x) + "\n")
    with pytest.raises(DataError, match="unknown sample rate"):
        read_vibration(one)
    np.testing.assert_allclose(read_vibration(one, sample_rate_hz=RATE).samples, x, atol=1e-6)
    two = tmp_path / "two.csv"
    t = np.arange(200) / RATE
    two.write_text("t,a\n" + "\n".join(f"{a:.9f},{b:.9f}" for a, b in zip(t, x, strict=True)))
    w = read_vibration(two)
    assert w.sample_rate_hz == pytest.approx(RATE, rel=1e-4)
    np.testing.assert_allclose(w.samples, x, atol=1e-6)


def test_csv_bad_line_and_uneven_time(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a\n0.1\n0.2\noops\n")
    with pytest.raises(DataError, match="line 3 is not numeric"):
        read_vibration(bad, sample_rate_hz=RATE)
    uneven = tmp_path / "uneven.csv"
    uneven.write_text("t,a\n0,1\n0.1,2\n0.3,3\n")
    with pytest.raises(DataError, match="equal steps"):
        read_vibration(uneven)
    nan = tmp_path / "nan.csv"
    nan.write_text("0.1\nnan\n0.3\n")
    with pytest.raises(DataError, match="NaN or infinite"):
        read_vibration(nan, sample_rate_hz=RATE)


def test_mat_first_array_named_channel_and_rpm(tmp_path: Path) -> None:
    path = tmp_path / "rec.mat"
    scipy.io.savemat(
        path,
        {
            "X097_DE_time": tone()[:, None],
            "X097_FE_time": 3 * tone()[:, None],
            "X097RPM": np.array([[1797.0]]),
        },
    )
    with pytest.raises(DataError, match="unknown sample rate"):
        read_vibration(path)
    w = read_vibration(path, sample_rate_hz=12000, channel="FE_time")
    np.testing.assert_allclose(w.samples, 3 * tone(), atol=1e-6)
    assert w.rpm == 1797.0
    assert read_vibration(path, sample_rate_hz=12000, rpm=1750.0).rpm == 1750.0
    with pytest.raises(DataError, match="no key 'BA_time'"):
        read_vibration(path, sample_rate_hz=12000, channel="BA_time")


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found") as err:
        read_vibration(tmp_path / "gone.wav")
    assert "gone.wav" in str(err.value)
    with pytest.raises(DataError, match="unsupported vibration file type"):
        read_vibration(tmp_path / "x.flac")
    corrupt = tmp_path / "c.mat"
    corrupt.write_bytes(b"\x00" * 50)
    with pytest.raises(DataError, match=r"c\.mat"):
        read_vibration(corrupt, sample_rate_hz=RATE)


def test_replay_cuts_windows_and_reports_the_tail() -> None:
    rec = VibrationWindow(np.arange(2500, dtype=np.float32), 1000.0, rpm=600.0, source="r")
    with VibrationReplay(rec, window_s=1.0) as replay:
        assert isinstance(replay, VibrationSource)
        windows = list(replay)
    assert [w.start_s for w in windows] == [0.0, 1.0]
    assert windows[1].window.samples[0] == 1000 and windows[1].window.rpm == 600.0
    assert replay.dropped_tail_samples == 500


def test_replay_in_real_time_is_paced_by_the_clock() -> None:
    import time

    rec = VibrationWindow(np.zeros(300, dtype=np.float32), 1000.0)
    replay = VibrationReplay(rec, window_s=0.05, realtime=True)
    t0 = time.monotonic()
    n = sum(1 for _ in replay)
    assert n == 6
    assert time.monotonic() - t0 >= 0.25  # 6 windows of 50 ms, the first due after 50 ms
    with pytest.raises(TimeoutError):
        VibrationReplay(rec, window_s=0.2, realtime=True).read(timeout_s=0.01)
