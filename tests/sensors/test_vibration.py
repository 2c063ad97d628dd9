"""Vibration readers (WAV, .npy, .csv, .mat), their refusals, and the replay stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from sensors.errors import DataError
from sensors.sample import VibrationWindow
from sensors.vibration import (
    CLIP_PEAKS,
    VibrationReplay,
    VibrationSource,
    clipping,
    read_vibration,
)

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
    with pytest.raises(DataError, match="line 4 is not numeric"):  # as an editor numbers it
        read_vibration(bad, sample_rate_hz=RATE)
    uneven = tmp_path / "uneven.csv"
    uneven.write_text("t,a\n0,1\n0.1,2\n0.3,3\n")
    with pytest.raises(DataError, match="equal steps"):
        read_vibration(uneven)
    nan = tmp_path / "nan.csv"
    nan.write_text("0.1\nnan\n0.3\n")
    with pytest.raises(DataError, match="NaN or infinite"):
        read_vibration(nan, sample_rate_hz=RATE)


def three_axes(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Times at RATE and three distinct axes (x, y, z) as columns."""
    t = np.arange(n) / RATE
    return t, np.stack([tone(n), tone(n, 1000.0, 0.2), tone(n, 2500.0, 0.1)], axis=1)


def write_table(
    path: Path, header: str, columns: np.ndarray, sep: str, comma: bool = False
) -> Path:
    """`columns` (N, C) as text: `sep` between fields, decimal commas when `comma`."""
    rows = [sep.join(f"{v:.9f}" for v in row) for row in columns]
    text = "\n".join(([header] if header else []) + rows) + "\n"
    path.write_text(text.replace(".", ",") if comma else text)
    return path


@pytest.mark.parametrize("channel", ["y", "Y", "2", 2])
def test_csv_time_and_three_axes_picks_the_channel_by_name_or_index(
    tmp_path: Path, channel: str | int
) -> None:
    t, xyz = three_axes()
    path = write_table(tmp_path / "xyz.csv", "time,x,y,z", np.column_stack([t, xyz]), ",")
    w = read_vibration(path, channel=channel)
    assert w.sample_rate_hz == pytest.approx(RATE, rel=1e-6)  # from the time column
    np.testing.assert_allclose(w.samples, xyz[:, 1], atol=1e-6)


def test_csv_semicolons_with_decimal_commas(tmp_path: Path) -> None:
    t, xyz = three_axes()
    path = write_table(
        tmp_path / "de.csv", "Seconds;X;Y;Z", np.column_stack([t, xyz]), ";", comma=True
    )
    assert "0,000125000;" in path.read_text()  # as a German spreadsheet writes it
    w = read_vibration(path, channel="z")
    assert w.sample_rate_hz == pytest.approx(RATE, rel=1e-6)
    np.testing.assert_allclose(w.samples, xyz[:, 2], atol=1e-6)
    one = write_table(tmp_path / "one.csv", "Beschleunigung", xyz[:, :1], ";", comma=True)
    w = read_vibration(one, sample_rate_hz=RATE)  # one named column: its commas are decimal
    np.testing.assert_allclose(w.samples, xyz[:, 0], atol=1e-6)
    headerless = write_table(tmp_path / "ta.csv", "", np.column_stack([t, xyz[:, 0]]), ";", True)
    w = read_vibration(headerless)  # two columns without a header: still `t,a`
    assert w.sample_rate_hz == pytest.approx(RATE, rel=1e-6)
    np.testing.assert_allclose(w.samples, xyz[:, 0], atol=1e-6)


@pytest.mark.parametrize(
    ("sep", "comma"), [("\t", False), ("\t", True), ("   ", False), (" ", True)]
)
def test_csv_tab_or_space_separated(tmp_path: Path, sep: str, comma: bool) -> None:
    t, xyz = three_axes()
    header = sep.join(["time [s]", "x", "y", "z"]) if sep == "\t" else ""
    path = write_table(tmp_path / "tab.csv", header, np.column_stack([t, xyz]), sep, comma)
    # without a header no column is time: the rate comes from the table, the axis by index
    channel = "x" if header else "1"
    w = read_vibration(path, sample_rate_hz=None if header else RATE, channel=channel)
    assert w.sample_rate_hz == pytest.approx(RATE, rel=1e-6)
    np.testing.assert_allclose(w.samples, xyz[:, 0], atol=1e-6)


def test_csv_several_columns_need_a_channel_that_names_one(tmp_path: Path) -> None:
    t, xyz = three_axes()
    path = write_table(tmp_path / "xyz.csv", "time,x,y,z", np.column_stack([t, xyz]), ",")
    with pytest.raises(DataError, match="3 data columns") as err:
        read_vibration(path)
    message = str(err.value)
    assert "xyz.csv" in message and "`channel`" in message and "labels.csv" in message
    assert all(f"'{axis}' (column {i + 1})" in message for i, axis in enumerate("xyz"))
    with pytest.raises(DataError, match=r"channel 'w' names no column .*'x' \(column 1\)"):
        read_vibration(path, channel="w")
    with pytest.raises(DataError, match="channel 0 is the time column"):
        read_vibration(path, channel=0)
    with pytest.raises(DataError, match="channel '9' names no column"):
        read_vibration(path, channel="9")
    headerless = write_table(tmp_path / "raw.csv", "", xyz, ";")
    with pytest.raises(DataError, match="no header: columns 0, 1, 2"):
        read_vibration(headerless, sample_rate_hz=RATE)


def test_csv_one_data_column_reads_as_before_whatever_the_channel(tmp_path: Path) -> None:
    # `channel` was never read for .csv: a table that sets it for every row must not break them
    t, xyz = three_axes()
    path = write_table(tmp_path / "ta.csv", "t,a", np.column_stack([t, xyz[:, 0]]), ",")
    for channel in (None, "DE_time", "0", "a"):
        w = read_vibration(path, channel=channel)
        np.testing.assert_allclose(w.samples, xyz[:, 0], atol=1e-6)
    # a header that is no time name and a channel: two axes of a logger without a time column
    xy = write_table(tmp_path / "xy.csv", "x,y", xyz[:, :2], ",")
    w = read_vibration(xy, sample_rate_hz=RATE, channel="y")
    np.testing.assert_allclose(w.samples, xyz[:, 1], atol=1e-6)


def test_csv_from_a_spreadsheet_keeps_its_first_row(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"  # "CSV UTF-8" starts with a byte-order mark
    path.write_text("\ufeff0.25\n0.5\n0.75\n", encoding="utf-8")
    assert read_vibration(path, sample_rate_hz=RATE).samples.tolist() == [0.25, 0.5, 0.75]


def test_csv_ragged_and_non_numeric_lines_are_named(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("time;x;y\n0;1;2\n\n0,1;1\n")
    with pytest.raises(DataError, match="line 4 has 2 fields, expected 3"):
        read_vibration(ragged, channel="x")
    text = tmp_path / "text.csv"
    text.write_text("time,x,y\n0,1,2\n0.1,1,n/a\n")
    with pytest.raises(DataError, match=r"line 3 is not numeric: \['0.1', '1', 'n/a'\]"):
        read_vibration(text, channel="x")


def test_csv_time_printed_with_few_digits_still_gives_the_rate(tmp_path: Path) -> None:
    rate = 25600.0
    t = np.arange(2000) / rate
    path = tmp_path / "us.csv"  # to the microsecond: steps of 39 and 40 us
    path.write_text("t,a\n" + "\n".join(f"{v:.6f},{i % 7}" for i, v in enumerate(t)))
    assert read_vibration(path).sample_rate_hz == pytest.approx(rate, rel=1e-4)
    dropped = tmp_path / "dropped.csv"  # one sample lost in the middle: not uniform
    keep = np.delete(np.arange(2000), 1000)
    dropped.write_text("t,a\n" + "\n".join(f"{t[i]:.6f},0" for i in keep))
    with pytest.raises(DataError, match="equal steps"):
        read_vibration(dropped)


def test_csv_with_date_or_clock_times_in_the_first_column(tmp_path: Path) -> None:
    """Data loggers export each sample's time as a date-time or a clock time, not seconds: the
    column gives the rate, whatever its header is called, and a file without a header keeps
    its first row."""
    x = tone(400)
    step_us = 1_000_000 // RATE  # 125 us at 8 kHz
    iso = tmp_path / "logger.csv"
    start = np.datetime64("2026-12-06T23:59:59.950000")  # passes midnight: dates carry it
    rows = [str(start + np.timedelta64(i * step_us, "us")) + "Z" for i in range(x.size)]
    iso.write_text(
        "Date/Time,X,Y\n" + "".join(f"{t},{a:.6f},{-a:.6f}\n" for t, a in zip(rows, x, strict=True))
    )
    w = read_vibration(iso, channel="X")
    assert w.sample_rate_hz == pytest.approx(RATE)
    np.testing.assert_allclose(w.samples, x, atol=1e-6)
    assert read_vibration(iso, channel="Y", sample_rate_hz=RATE).samples[1] == pytest.approx(-x[1])

    comma = tmp_path / "zeit.csv"  # a German export: `;` between fields, decimal commas
    lines = [
        f"2026-12-06 08:00:00,{i * step_us:06d};{a:.6f}".replace(".", ",")
        for i, a in enumerate(x[:50])
    ]
    comma.write_text("Zeit;Wert\n" + "\n".join(lines) + "\n")
    w = read_vibration(comma)
    assert w.sample_rate_hz == pytest.approx(RATE)
    np.testing.assert_allclose(w.samples, x[:50], atol=1e-6)

    morning = tmp_path / "morning.csv"  # one-digit hours, as some loggers print them
    morning.write_text("".join(f"9:59:59.{999000 + i * step_us}\t0.1\n" for i in range(8)))
    assert read_vibration(morning).sample_rate_hz == pytest.approx(RATE)

    clock = tmp_path / "clock.csv"  # no header: the first row is data
    clock.write_text(
        "".join(f"08:00:00.{i * step_us:06d}\t{a:.6f}\n" for i, a in enumerate(x[:50]))
    )
    w = read_vibration(clock)
    assert w.samples.size == 50 and w.sample_rate_hz == pytest.approx(RATE)

    bad = tmp_path / "bad.csv"
    bad.write_text("time,a\n08:00:00.000000,0.1\n\noops,0.2\n")
    with pytest.raises(DataError, match="line 4: 'oops' is not a time"):
        read_vibration(bad)
    gap = tmp_path / "gap.csv"
    gap.write_text("".join(f"08:00:00.{t:06d},0.1\n" for t in (0, 125, 250, 500, 625)))
    with pytest.raises(DataError, match="equal steps"):
        read_vibration(gap)


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


def test_mat_signals_inside_structs(tmp_path: Path) -> None:
    """MATLAB structs, as other public bearing sets save them: MFPT's `bearing.gs` (one signal:
    read without a channel) and Paderborn's `Y` struct array of named channels."""
    mfpt = tmp_path / "mfpt.mat"
    scipy.io.savemat(mfpt, {"bearing": {"sr": 48828.0, "gs": tone()[:, None], "rate": 25.0}})
    np.testing.assert_allclose(read_vibration(mfpt, sample_rate_hz=RATE).samples, tone(), atol=1e-6)
    by_field = read_vibration(mfpt, sample_rate_hz=RATE, channel="gs").samples
    np.testing.assert_allclose(by_field, tone(), atol=1e-6)
    full_path = read_vibration(mfpt, sample_rate_hz=RATE, channel="bearing.gs").samples
    assert full_path.size == tone().size

    channels = np.zeros((1, 3), dtype=[("Name", "O"), ("Data", "O"), ("Raster", "O")])
    for i, name in enumerate(("force", "speed", "vibration_1")):
        channels[0, i]["Name"] = np.array([name])
        channels[0, i]["Data"] = (i + 1) * tone()[None, :]
        channels[0, i]["Raster"] = np.array(["Mech_4kHz"])
    paderborn = tmp_path / "N15_M07_F10_K001_1.mat"
    scipy.io.savemat(paderborn, {"N15_M07_F10_K001_1": {"Y": channels}})
    with pytest.raises(DataError, match=r"3 1-D numeric arrays .*Y\.vibration_1.*`channel`"):
        read_vibration(paderborn, sample_rate_hz=RATE)  # which one is the vibration? ask
    vib = read_vibration(paderborn, sample_rate_hz=RATE, channel="vibration_1").samples
    np.testing.assert_allclose(vib, 3 * tone(), atol=1e-6)
    full = read_vibration(paderborn, sample_rate_hz=RATE, channel="N15_M07_F10_K001_1.Y.speed")
    np.testing.assert_allclose(full.samples, 2 * tone(), atol=1e-6)
    with pytest.raises(DataError, match=r"no key 'Data' .*Y\.force"):
        read_vibration(paderborn, sample_rate_hz=RATE, channel="Data")

    unnamed = tmp_path / "runs.mat"
    runs = np.zeros((1, 2), dtype=[("x", "O")])
    runs[0, 0]["x"], runs[0, 1]["x"] = tone()[:, None], 5 * tone()[:, None]
    scipy.io.savemat(unnamed, {"run": runs})
    second = read_vibration(unnamed, sample_rate_hz=RATE, channel="run(2).x").samples
    np.testing.assert_allclose(second, 5 * tone(), atol=1e-5)


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


def test_tsv_and_txt_tables_read_as_csv(tmp_path: Path) -> None:
    """Loggers and test benches save text tables as .txt / .tsv too: a headerless, whitespace-
    separated four-bearing table (as some public bearing sets ship) and a tab table with time."""
    rng = np.random.default_rng(3)
    bearings = rng.normal(size=(600, 4))
    txt = write_table(tmp_path / "2003.10.22.12.06.24.txt", "", bearings, "\t")
    w = read_vibration(txt, sample_rate_hz=20000, channel=2)
    assert w.sample_rate_hz == 20000
    np.testing.assert_allclose(w.samples, bearings[:, 2], atol=1e-6)
    with pytest.raises(DataError, match=r"\.txt has 4 data columns"):
        read_vibration(txt, sample_rate_hz=20000)
    t, xyz = three_axes()
    tsv = write_table(tmp_path / "run.tsv", "time\tx\ty\tz", np.column_stack([t, xyz]), "\t")
    w = read_vibration(tsv, channel="z")
    assert w.sample_rate_hz == pytest.approx(RATE, rel=1e-6)
    np.testing.assert_allclose(w.samples, xyz[:, 2], atol=1e-6)
    binary = tmp_path / "logger.txt"
    binary.write_bytes(b"\x00\xff\xfe" * 100)
    with pytest.raises(DataError, match=r"logger\.txt.*not UTF-8 text"):
        read_vibration(binary, sample_rate_hz=RATE)


def test_a_text_table_under_a_name_that_says_no_format_is_read(tmp_path: Path) -> None:
    """IMS bearing snapshots are named by their time (`2003.10.22.12.06.24`, tab-separated,
    four bearings); loggers write `.dat` and `.asc`: read by their content, not their name."""
    rng = np.random.default_rng(5)
    bearings = rng.normal(size=(3000, 4))
    ims = write_table(tmp_path / "2003.10.22.12.06.24", "", bearings, "\t")
    w = read_vibration(ims, sample_rate_hz=20000, channel=3)
    np.testing.assert_allclose(w.samples, bearings[:, 3], atol=1e-6)
    with pytest.raises(DataError, match="text table has 4 data columns"):
        read_vibration(ims, sample_rate_hz=20000)
    with pytest.raises(DataError, match="unknown sample rate: text table files"):
        read_vibration(ims, channel=3)
    t, xyz = three_axes()
    logger = write_table(tmp_path / "run7.dat", "time,x,y,z", np.column_stack([t, xyz]), ",")
    assert read_vibration(logger, channel="x").sample_rate_hz == pytest.approx(RATE, rel=1e-6)
    binary = tmp_path / "run8.dat"
    binary.write_bytes(np.arange(100, dtype=np.float32).tobytes())
    with pytest.raises(DataError, match=r"unsupported vibration file type '\.dat'.*text table"):
        read_vibration(binary, sample_rate_hz=RATE)


def _machine(seconds: float = 0.25, rate: float = 25600.0, seed: int = 0) -> np.ndarray:
    """A shaft's 1x and 2x with broadband noise, as an accelerometer on a running machine
    gives it (float, finely resolved)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = np.sin(2 * np.pi * 29.5 * t) + 0.4 * np.sin(2 * np.pi * 59 * t + 1.0)
    return (x + 0.3 * rng.standard_normal(t.size)).astype(np.float32)


def test_clipping_finds_the_rail_an_overloaded_sensor_flat_tops_at() -> None:
    x = _machine()
    assert clipping(x) is None  # a live signal reaches its largest value once
    assert clipping(np.round(x * 4000) / 4000) is None  # as a 16-bit DAQ would give it
    rail = 0.8 * float(x.max())
    clipped = clipping(np.minimum(x, rail))  # the positive side over the input range
    assert clipped is not None and clipped.rail == pytest.approx(rail)
    assert clipped.peaks >= CLIP_PEAKS and clipped.samples > clipped.peaks
    both = clipping(np.clip(x, -0.5, 0.5))  # both rails: the one with more samples is named
    assert both is not None and abs(both.rail) == pytest.approx(0.5)


def test_clipping_is_not_called_on_a_coarse_quiet_signal_or_a_single_flat_peak() -> None:
    quiet = np.round(_machine() * 3)  # a few ADC steps: ties at the extremes by rounding
    assert clipping(quiet) is None
    x = _machine()
    peak = int(np.argmax(x))
    one = x.copy()
    one[peak : peak + 20] = x[peak]  # one plateau: not the same value at separate peaks
    assert clipping(one) is None
    assert clipping(np.zeros(100)) is None and clipping(np.array([1.0])) is None
