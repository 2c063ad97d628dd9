"""Vibration input: file readers (WAV, .npy, .csv / .tsv / .txt, MATLAB .mat), a replay stream,
a live protocol.

Every reader returns a `VibrationWindow` (1-D float32 samples with their rate) or raises
`DataError` naming the file: truncated or malformed files, NaN or infinite samples, and a
missing sample rate (only WAV carries its own) are errors, never guesses.
"""

from __future__ import annotations

import itertools
import re
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np

from sensors.errors import DataError
from sensors.sample import VibrationWindow

# text tables of numbers, all read alike (`_read_csv`): data loggers write .txt and .tsv as often
# as .csv, with any of the delimiters `_sniff_delimiter` knows
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
VIBRATION_SUFFIXES = (".wav", ".npy", *TEXT_SUFFIXES, ".mat")

# WAVE_FORMAT_* tags (RIFF spec)
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def read_vibration(
    path: str | Path,
    sample_rate_hz: float | None = None,
    channel: str | int | None = None,
    rpm: float | None = None,
) -> VibrationWindow:
    """Read a vibration recording by its suffix.

    `sample_rate_hz` is required for .npy, .mat and a .csv without a time column (.tsv and
    .txt are read as .csv: `TEXT_SUFFIXES`); for WAV and such a .csv it is read from the file
    and, when also given, must agree. `channel` picks a .mat key (e.g. CWRU's `DE_time`; a key
    ending in `_DE_time` also matches), a column index for multi-channel WAV / .npy, or a
    column of a .csv with several (a header name or a 0-based index; `_read_csv`). `rpm` is
    the shaft speed; a .mat `RPM` entry is used when `rpm` is not given.

    >>> w = read_vibration("recordings/IR007_0.mat", sample_rate_hz=12000, channel="DE_time")
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIBRATION_SUFFIXES and not (path.is_file() and is_text_table(path)):
        msg = (
            f"unsupported vibration file type {suffix!r}; expected one of {VIBRATION_SUFFIXES} "
            "(or a text table of numbers under any name)"
        )
        raise DataError(msg, path)
    if not path.is_file():
        raise DataError("file not found", path)
    if sample_rate_hz is not None and (not np.isfinite(sample_rate_hz) or sample_rate_hz <= 0):
        raise DataError(f"sample rate must be a positive number of Hz, got {sample_rate_hz}", path)

    file_rate: float | None = None
    file_rpm: float | None = None
    if suffix == ".wav":
        samples, file_rate = _read_wav(path, channel)
    elif suffix == ".npy":
        samples = _read_npy(path, channel)
    elif suffix == ".mat":
        samples, file_rpm = _read_mat(path, channel)
    else:  # .csv, .tsv, .txt, or a text table under another name
        samples, file_rate = _read_csv(path, channel)

    rate = _resolve_rate(path, sample_rate_hz, file_rate)
    _check_finite(path, samples)
    if samples.size < 2:
        raise DataError(f"recording holds {samples.size} samples; expected at least 2", path)
    return VibrationWindow(
        samples=np.ascontiguousarray(samples, dtype=np.float32),
        sample_rate_hz=rate,
        rpm=rpm if rpm is not None else file_rpm,
        source=str(path),
    )


def is_text_table(path: Path) -> bool:
    """Whether a file under a name that says no format (IMS bearing snapshots are named by their
    time, `2003.10.22.12.06.24`; loggers write `.dat`, `.asc`) holds a text table of numbers:
    its start is text whose lines (the first may be a header) are numbers under one delimiter.
    A binary file is not; nor is an unreadable one (its reader then names the problem)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    if not head or b"\x00" in head:
        return False
    lines = [ln for ln in head.decode("utf-8", errors="replace").splitlines() if ln.strip(_BLANK)]
    if len(head) == _SNIFF_BYTES:
        lines = lines[:-1]  # the last line may be cut short
    lines = lines[:_SNIFF_LINES]
    rows = lines[1:] or lines  # the first may be a header
    if not rows:
        return False
    delimiter = _sniff_delimiter(lines)
    decimal_comma = delimiter != ","
    return all(
        all(_is_number(_decimal(cell, decimal_comma)) for cell in _csv_cells(line, delimiter))
        for line in rows
    )


def _kind(path: Path) -> str:
    """How messages name a recording's format: by its suffix (`.csv`, `.npy`), or `text table`
    under a name that says no format."""
    return path.suffix if path.suffix.lower() in VIBRATION_SUFFIXES else "text table"


def _resolve_rate(path: Path, given: float | None, from_file: float | None) -> float:
    if from_file is not None:
        if given is not None and abs(given - from_file) > 0.01 * from_file:
            msg = f"sample rate {given:g} Hz given, but the file says {from_file:g} Hz"
            raise DataError(msg, path)
        return float(from_file)
    if given is None:
        msg = (
            f"unknown sample rate: {_kind(path)} files do not carry one; give sample_rate_hz "
            "(the sample_rate_hz column of labels.csv)"
        )
        raise DataError(msg, path)
    return float(given)


def _check_finite(path: Path, samples: np.ndarray) -> None:
    bad = ~np.isfinite(samples)
    if bad.any():
        first = int(np.argmax(bad))
        msg = (
            f"{int(bad.sum())} NaN or infinite samples (first at sample {first}, value "
            f"{samples[first]}); a sensor fault must be fixed or the part marked, not averaged"
        )
        raise DataError(msg, path)


@dataclass(frozen=True)
class Clipping:
    """Where a window is flat-topped: `samples` of it sit at `rail`, in `peaks` separate runs."""

    rail: float
    samples: int
    peaks: int


# `clipping`: a rail counts when this many separate peaks stop at exactly that value...
CLIP_PEAKS = 3
# ... and the window is resolved finely enough that an exact tie means something: at least this
# many distinct values (or a quarter of its samples, for a short window)
CLIP_LEVELS = 1000


def clipping(samples: np.ndarray) -> Clipping | None:
    """The rail (largest or smallest value) a vibration window is clipped at, None if it is not.

    An accelerometer, its amplifier or the DAQ's input range that is overloaded flat-tops the
    waveform: every peak that would have gone further stops at the same value. A live signal
    reaches its largest value once (a second, separate peak landing on exactly the same value
    is rare; a third, with a finely resolved signal, is not seen: every 0.25 s window of the
    CWRU recordings has its largest value at one sample). So a rail is `CLIP_PEAKS` or more
    separate runs of samples at exactly the window's largest (or smallest) value, in a window of
    at least `CLIP_LEVELS` distinct values; a coarsely quantized quiet signal, which ties at
    its extremes by rounding, is never called clipped.
    """
    x = np.asarray(samples).ravel()
    if x.size < 2 or not np.isfinite(x).all():
        return None
    worst: Clipping | None = None
    for rail in (float(x.max()), float(x.min())):
        at = x == rail
        peaks = int(at[0]) + int(np.count_nonzero(at[1:] & ~at[:-1]))
        if peaks >= CLIP_PEAKS and (worst is None or int(at.sum()) > worst.samples):
            worst = Clipping(rail, int(at.sum()), peaks)
    # the distinct values last: a sort, only for the rare window whose rails tie
    if worst is None or np.unique(x).size < min(CLIP_LEVELS, x.size // 4):
        return None
    return worst


# --- WAV ---------------------------------------------------------------------------------------


def _read_wav(path: Path, channel: str | int | None) -> tuple[np.ndarray, float]:
    data = path.read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DataError("not a WAV file (no RIFF/WAVE header)", path)
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + size > len(data):
                raise DataError("truncated WAV: the fmt chunk is cut short", path)
            tag, n_channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _EXTENSIBLE and size >= 26:
                (tag,) = struct.unpack_from("<H", data, body + 24)
            fmt = (tag, n_channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise DataError("malformed WAV: data chunk before the fmt chunk", path)
            if body + size > len(data):
                msg = (
                    f"truncated WAV: the data chunk declares {size} bytes but only "
                    f"{len(data) - body} are present"
                )
                raise DataError(msg, path)
            return _decode_pcm(path, data[body : body + size], fmt, channel), float(fmt[2])
        pos = body + size + (size & 1)  # chunks are word-aligned
    if fmt is None:
        raise DataError("truncated WAV: no fmt chunk", path)
    raise DataError("truncated WAV: no data chunk", path)


def _decode_pcm(
    path: Path, raw: bytes, fmt: tuple[int, int, int, int], channel: str | int | None
) -> np.ndarray:
    tag, n_channels, rate, bits = fmt
    if n_channels < 1 or rate <= 0:
        raise DataError(f"malformed WAV header: {n_channels} channels at {rate} Hz", path)
    width = bits // 8
    frame = width * n_channels
    if width == 0 or len(raw) % frame:
        msg = f"truncated WAV: {len(raw)} data bytes is not a whole number of {frame}-byte frames"
        raise DataError(msg, path)
    if tag == _FLOAT and bits in (32, 64):
        x = np.frombuffer(raw, dtype=f"<f{width}").astype(np.float64)
    elif tag == _PCM and bits == 8:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif tag == _PCM and bits in (16, 32):
        x = np.frombuffer(raw, dtype=f"<i{width}").astype(np.float64) / float(2 ** (bits - 1))
    elif tag == _PCM and bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float64) / float(1 << 23)
    else:
        msg = (
            f"unsupported WAV encoding: format tag {tag}, {bits} bits; "
            "expected PCM 8/16/24/32 or float"
        )
        raise DataError(msg, path)
    x = x.reshape(-1, n_channels)
    return x[:, _channel_index(path, channel, n_channels)]


def _channel_index(path: Path, channel: str | int | None, n_channels: int) -> int:
    if channel is None or channel == "":
        return 0
    try:
        index = int(channel)
    except ValueError:
        msg = f"channel {channel!r} must be a column index for this file type"
        raise DataError(msg, path) from None
    if not 0 <= index < n_channels:
        raise DataError(f"channel {index} out of range: the file has {n_channels}", path)
    return index


# --- .npy, .csv, .mat ----------------------------------------------------------------------------


def _read_npy(path: Path, channel: str | int | None) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"unreadable .npy file ({exc})", path) from exc
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise DataError(f".npy holds {x.dtype} values; expected real numbers", path)
    if x.ndim == 2 and 1 in x.shape and channel in (None, ""):
        x = x.reshape(-1)
    if x.ndim == 2:
        x = x[:, _channel_index(path, channel, x.shape[1])]
    if x.ndim != 1:
        raise DataError(f".npy array has shape {x.shape}; expected (N,) or (N, channels)", path)
    return x.astype(np.float64)


# A first column headed by one of these names (any case; a unit "(s)" or "[s]" may follow)
# holds each sample's time in seconds, and gives the rate.
TIME_COLUMN_NAMES = ("t", "time", "time_s", "seconds")
_SECONDS_UNIT = re.compile(r"\s*[(\[]\s*s\s*[)\]]$")
_SNIFF_LINES = 20  # the first non-blank lines the delimiter is chosen from
_SNIFF_BYTES = 4096  # what `is_text_table` reads of a file under a name that says no format
_BLANK = " \t,;"  # a line of only these is skipped, as csv rows of empty cells always were
# A first column of date-times or clock times, as data loggers export them:
# `2026-12-06T08:00:00.000200`, `2026-12-06 08:00:00,0002` (a decimal comma), `08:00:00.0002`;
# a `Z` or UTC offset may follow
_TIMESTAMP = re.compile(
    r"^(?:(\d{4}-\d{2}-\d{2})[T ])?(\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?)(Z|[+-]\d{2}:?\d{2})?$"
)


@dataclass(frozen=True)
class _CsvTable:
    """A .csv file's numbers and its header's column names (None without a header)."""

    values: np.ndarray  # (rows, columns) float64
    names: list[str] | None
    timestamps: bool = False  # column 0 was date-times / clock times, now seconds from the first


def _read_csv(path: Path, channel: str | int | None) -> tuple[np.ndarray, float | None]:
    """The samples of a .csv recording, and the rate when a time column gives one.

    Delimiters and the header: `_csv_table`. The first column is time (seconds) when its
    header is a time name (`TIME_COLUMN_NAMES`), or when the file has two columns: the `t,a`
    form, read so since the first version, unless a header names the columns and `channel`
    picks one (a two-axis logger without time). The other columns hold data. With one data
    column `channel` is not looked at (it never was for .csv); several need it: a header name
    (any case) or a 0-based column index of the file.
    """
    table = _csv_table(path)
    names, width = table.names, table.values.shape[1]
    picked = channel not in (None, "")
    has_time = width > 1 and (table.timestamps or (names is not None and _is_time_name(names[0])))
    if width == 2 and not has_time and not (picked and names is not None):
        has_time = True
    data = list(range(1 if has_time else 0, width))
    if len(data) == 1:
        column = data[0]
    elif not picked:
        msg = (
            f"{_kind(path)} has {len(data)} data columns ({_describe_columns(names, data)}); "
            "set the `channel` column of labels.csv to the one to read (a header name or a 0-based "
            "column index)"
        )
        raise DataError(msg, path)
    else:
        column = _csv_column(path, str(channel), names, data)
    samples = table.values[:, column]
    if not has_time:
        return samples, None
    return samples, _rate_from_time(path, table.values[:, 0])


def _is_time_name(name: str) -> bool:
    return _SECONDS_UNIT.sub("", name.strip().lower()) in TIME_COLUMN_NAMES


def _describe_columns(names: list[str] | None, columns: Sequence[int]) -> str:
    if names is None:
        return "no header: columns " + ", ".join(str(c) for c in columns)
    return ", ".join(f"{names[c]!r} (column {c})" for c in columns)


def _csv_column(path: Path, channel: str, names: list[str] | None, data: list[int]) -> int:
    """The file column `channel` picks among the data columns: a header name, else an index."""
    if names is not None:
        exact = [c for c in data if names[c] == channel]
        found = exact or [c for c in data if names[c].lower() == channel.strip().lower()]
        if len(found) > 1:
            msg = f"channel {channel!r} matches several columns ({_describe_columns(names, found)})"
            raise DataError(msg, path)
        if found:
            return found[0]
    try:
        index = int(channel)
    except ValueError:
        index = -1
    if index in data:
        return index
    if index == 0:
        msg = f"channel 0 is the time column; the data columns are {_describe_columns(names, data)}"
        raise DataError(msg, path)
    columns = _describe_columns(names, data)
    msg = f"channel {channel!r} names no column of this {_kind(path)} ({columns})"
    raise DataError(msg, path)


def _rate_from_time(path: Path, t: np.ndarray) -> float:
    """The sample rate a time column (seconds) steps at; it must step evenly."""
    dt = np.diff(t)
    msg = "the time column must increase in equal steps (uniform sampling)"
    if t.size < 2 or np.any(dt <= 0):
        raise DataError(msg, path)
    step = float(np.median(dt))
    if np.ptp(dt) <= 0.01 * step:
        return 1.0 / step
    # Loggers print time with few digits (25.6 kHz to the microsecond steps 39, 39, 40, 39 us):
    # such a column is still even when every time lies within a quarter sample of one grid; a
    # lost or repeated sample puts times half a sample or more off it.
    step = float(t[-1] - t[0]) / (t.size - 1)
    off_grid = np.abs(t - (t[0] + step * np.arange(t.size)))
    if float(off_grid.max()) > 0.25 * step:
        raise DataError(msg, path)
    return 1.0 / step


def _csv_table(path: Path) -> _CsvTable:
    """Read a .csv of numbers fast (numpy's parser; a Python pass only to word an error).

    The delimiter is tab, `;`, `,` or runs of whitespace (`_sniff_delimiter`). A comma that
    is not the delimiter is a decimal comma (`0,0123;1,5`, `0,0123 1,5`); so are the commas of
    a file whose header names one column over rows of one comma and no point. The first
    non-blank line is a header when any of its cells is not a number. Lines of only blanks
    and delimiters are skipped. A UTF-8 byte-order mark (spreadsheet export) is ignored.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{_kind(path)} is not UTF-8 text ({exc.reason}); expected a table of numbers", path
        ) from exc
    non_blank = (i for i, line in enumerate(lines) if line.strip(_BLANK))
    head = list(itertools.islice(non_blank, _SNIFF_LINES))
    if not head:
        raise DataError(f"empty {_kind(path)} file", path)
    delimiter = _sniff_delimiter([lines[i] for i in head])
    decimal_comma = delimiter != ","
    first = _csv_cells(lines[head[0]], delimiter)
    numbers = [_is_number(_decimal(c, decimal_comma)) for c in first]
    has_header = not all(numbers) and not (_TIMESTAMP.match(first[0]) and all(numbers[1:]))
    if delimiter == "," and has_header and len(first) == 1 and len(head) > 1:
        # one named column of decimal-comma numbers (`0,0123`): the header says one column,
        # and rows without a point cannot be the `t,a` form's seconds and samples
        rows = [lines[i] for i in head[1:]]
        if all(line.count(",") == 1 and "." not in line for line in rows):
            delimiter, decimal_comma = None, True
    start = head[0] + 1 if has_header else head[0]
    body_lines = [i for i in range(start, len(lines)) if lines[i].strip(_BLANK)]
    body = [lines[i] for i in body_lines]
    if not body:
        raise DataError(f"the {_kind(path)} has a header and no data rows", path)
    seconds = None
    if _TIMESTAMP.match(_csv_cells(body[0], delimiter)[0]):
        seconds, body = _split_timestamps(path, body, delimiter, body_lines)
    if decimal_comma:
        body = "\n".join(body).replace(",", ".").split("\n")
    try:
        values = np.loadtxt(
            body, dtype=np.float64, delimiter=delimiter, comments=None, quotechar='"', ndmin=2
        )
    except ValueError as exc:
        _explain_csv_error(path, lines, start, delimiter, decimal_comma, seconds is not None)
        raise DataError(f"unreadable {_kind(path)} ({exc})", path) from exc
    if seconds is not None:
        values = np.column_stack([seconds, values])
    names = first if has_header else None
    if names is not None and len(names) != values.shape[1]:
        if values.shape[1] > 2:  # the names would be put on the wrong columns
            msg = f"the header names {len(names)} columns but the rows have {values.shape[1]}"
            raise DataError(msg, path)
        names = None  # one or two columns were always read without their names
    return _CsvTable(values, names, timestamps=seconds is not None)


def _split_timestamps(
    path: Path, body: list[str], delimiter: str | None, rows: list[int]
) -> tuple[np.ndarray, list[str]]:
    """A first column of date-times or clock times as seconds from the first, and the lines
    without it. Every row must hold one in the first row's form (a logger writes one form in
    one zone, so the offset cancels out); a clock time is taken on one day."""
    split = [
        line.strip().partition(delimiter) if delimiter else _split_space(line) for line in body
    ]
    heads = [h.strip().strip('"').strip() for h, _, _ in split]
    first = _TIMESTAMP.match(heads[0])
    assert first is not None  # the caller looked
    date, _clock, zone = first.groups()
    cut = len(zone or "")
    try:
        if zone and not all(h.endswith(zone) for h in heads):
            raise ValueError(zone)
        iso = np.char.replace(np.array([h[: len(h) - cut] for h in heads]), ",", ".")
        iso = np.char.replace(iso, " ", "T")
        if date is None:
            iso = np.char.add("2000-01-01T", iso)
        hour_end = np.char.find(iso, ":")
        if np.any(hour_end == 12):  # a one-digit hour (`8:00:00.0002`): numpy wants two
            iso = np.array([f"{h[:11]}0{h[11:]}" if h[12] == ":" else h for h in iso.tolist()])
        t = np.array(iso, dtype="datetime64[ns]")  # all rows at once: fast
    except ValueError:  # a row that does not fit: find it (slow) and name it
        for offset, head in enumerate(heads):
            m = _TIMESTAMP.match(head)
            if m is None or m.group(3) != zone or (m.group(1) is None) != (date is None):
                msg = f"line {rows[offset] + 1}: {head!r} is not a time like the first row's"
                raise DataError(msg, path) from None
        raise DataError("unreadable time in the first column", path) from None
    return (t - t[0]).astype(np.float64) / 1e9, [tail for _, _, tail in split]


def _split_space(line: str) -> tuple[str, str, str]:
    parts = line.split(None, 1)
    return parts[0], " ", parts[1] if len(parts) > 1 else ""


def _sniff_delimiter(head: Sequence[str]) -> str | None:
    """The delimiter of a .csv whose first non-blank lines are `head`: tab, `;`, `,` or None
    (runs of whitespace).

    The first of those found in `head` under which its data lines (all but the first, which
    may be a header) split into equally many numeric cells, a comma being a decimal comma
    unless it is the delimiter; else the first found, so that the error names the bad line.
    """
    rows = head[1:] or head
    found = [d for d in ("\t", ";", ",") if any(d in line for line in head)]
    for delimiter in [*found, None]:
        cells = [_csv_cells(line, delimiter) for line in rows]
        decimal_comma = delimiter != ","
        if len({len(c) for c in cells}) == 1 and all(
            _is_number(_decimal(c, decimal_comma)) for row in cells for c in row
        ):
            return delimiter
    return found[0] if found else None


def _csv_cells(line: str, delimiter: str | None) -> list[str]:
    return [c.strip().strip('"').strip() for c in line.split(delimiter)]


def _decimal(cell: str, decimal_comma: bool) -> str:
    return cell.replace(",", ".") if decimal_comma else cell


def _explain_csv_error(
    path: Path,
    lines: Sequence[str],
    start: int,
    delimiter: str | None,
    decimal_comma: bool,
    timestamps: bool = False,
) -> None:
    """Raise the DataError naming the first ragged or non-numeric line (numbered as an editor
    numbers them), if there is one. With `timestamps` the first column is times, not numbers."""
    width: int | None = None
    for index in range(start, len(lines)):
        if not lines[index].strip(_BLANK):
            continue
        cells = _csv_cells(lines[index], delimiter)[1 if timestamps else 0 :]
        width = len(cells) if width is None else width
        if len(cells) != width:
            msg = f"line {index + 1} has {len(cells)} fields, expected {width}"
            raise DataError(msg, path)
        if not all(_is_number(_decimal(c, decimal_comma)) for c in cells):
            raise DataError(f"line {index + 1} is not numeric: {cells}", path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_mat(path: Path, channel: str | int | None) -> tuple[np.ndarray, float | None]:
    from scipy.io import loadmat  # scipy.io is slow to import; only .mat needs it
    from scipy.io.matlab import MatReadError

    try:
        data = loadmat(path)
    except NotImplementedError as exc:
        msg = "MATLAB v7.3 (HDF5) files are not supported; save with -v7 or export to .npy"
        raise DataError(msg, path) from exc
    except (MatReadError, ValueError, OSError, TypeError, EOFError) as exc:
        raise DataError(f"unreadable .mat file ({exc})", path) from exc
    entries: dict[str, np.ndarray] = {}
    for name, value in data.items():
        if not name.startswith("__"):
            _mat_entries(value, name, entries)
    rpm = _mat_rpm(entries)
    if channel not in (None, ""):
        key = _mat_key(path, entries, str(channel))
        x = np.asarray(entries[key])
        if x.squeeze().ndim != 1 or not np.issubdtype(x.dtype, np.number):
            raise DataError(
                f".mat key {key!r} holds {x.dtype} {x.shape}; expected 1-D numbers", path
            )
        return x.reshape(-1).astype(np.float64), rpm
    signals = [k for k, v in entries.items() if _is_signal(v)]
    top = [k for k in signals if k in data]
    if top:  # the first top-level signal, as CWRU's files have them (DE before FE)
        return entries[top[0]].reshape(-1).astype(np.float64), rpm
    if len(signals) == 1:  # one signal inside a struct (MFPT: bearing.gs)
        return entries[signals[0]].reshape(-1).astype(np.float64), rpm
    if signals:
        shown = ", ".join(signals[:12]) + (", ..." if len(signals) > 12 else "")
        msg = (
            f"{len(signals)} 1-D numeric arrays inside the .mat file's structs ({shown}); set "
            "the `channel` column of labels.csv to the one to read"
        )
        raise DataError(msg, path)
    raise DataError(f"no 1-D numeric array in .mat (keys: {sorted(entries)})", path)


def _is_signal(x: np.ndarray) -> bool:
    return np.issubdtype(x.dtype, np.number) and x.squeeze().ndim == 1


def _mat_entries(value: object, key: str, out: dict[str, np.ndarray]) -> None:
    """The arrays of one loaded .mat variable by path: `s.field` inside a struct, `s(i)` (from
    1, as MATLAB counts) inside a struct array, and `s.<name>` for the elements of a struct
    array of named channels (`Name` and `Data` fields, as the Paderborn bearing files keep
    theirs: `Y.vibration_1`)."""
    if not isinstance(value, np.ndarray):
        return
    fields = value.dtype.names
    if fields is None:
        if value.dtype != object:
            out[key] = value
        return
    items = value.reshape(-1)
    names = [_mat_text(item["Name"]) for item in items] if "Name" in fields else []
    named = "Data" in fields and len(items) > 1 and all(names) and len(set(names)) == len(names)
    for i, item in enumerate(items):
        if named:
            base = f"{key}.{names[i]}"
            _mat_entries(item["Data"], base, out)
        else:
            base = key if len(items) == 1 else f"{key}({i + 1})"
        for field in fields:
            if not (named and field in ("Data", "Name")):
                _mat_entries(item[field], f"{base}.{field}", out)


def _mat_text(value: object) -> str:
    """A MATLAB char array as loaded (`array(['vibration_1'])`), else ""."""
    flat = np.asarray(value).reshape(-1)
    return str(flat[0]) if flat.size == 1 and flat.dtype.kind == "U" else ""


def _mat_key(path: Path, entries: dict[str, np.ndarray], channel: str) -> str:
    if channel in entries:
        return channel
    # CWRU originals: X097_DE_time; a struct's field by its own name: gs for bearing.gs
    ends = [k for k in entries if k.endswith(("_" + channel, "." + channel))]
    if len(ends) == 1:
        return ends[0]
    raise DataError(f"no key {channel!r} in .mat (keys: {', '.join(sorted(entries))})", path)


def _mat_rpm(arrays: dict[str, np.ndarray]) -> float | None:
    for key, value in arrays.items():
        numeric = np.issubdtype(value.dtype, np.number)
        if numeric and (key.upper() == "RPM" or key.upper().endswith("RPM")):
            flat = np.asarray(value, dtype=np.float64).reshape(-1)
            if flat.size == 1 and np.isfinite(flat[0]) and flat[0] > 0:
                return float(flat[0])
    return None


# --- streams --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimedWindow:
    """A vibration window and the time its first sample was taken (seconds, source clock)."""

    start_s: float
    window: VibrationWindow

    @property
    def end_s(self) -> float:
        return self.start_s + self.window.duration_s


@runtime_checkable
class VibrationSource(Protocol):
    """What a live DAQ or sound-card input implements (and what `VibrationReplay` is).

    `read` returns the next window of `duration_s` seconds, blocking at most `timeout_s`; it
    raises `TimeoutError` when the device delivers nothing in time (the caller reports the gap)
    and `StopIteration` when a finite source is exhausted.
    """

    sample_rate_hz: float

    def read(self, duration_s: float, timeout_s: float) -> TimedWindow: ...

    def close(self) -> None: ...


class VibrationReplay:
    """Replays a recording as consecutive non-overlapping windows, in real time or at once.

    A context-managed iterator of `TimedWindow`. `realtime=True` paces windows by the wall
    clock as a live sensor would; otherwise windows come as fast as they are asked for. A tail
    shorter than `window_s` is not yielded, and `dropped_tail_samples` says how much was left.
    """

    def __init__(
        self,
        recording: VibrationWindow,
        window_s: float = 1.0,
        realtime: bool = False,
        loop: bool = False,
        start_s: float = 0.0,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.recording = recording
        self.sample_rate_hz = recording.sample_rate_hz
        self.window_s = window_s
        self.realtime = realtime
        self.loop = loop
        self.start_s = start_s
        self._pos = 0
        self._t0: float | None = None
        self._emitted_s = 0.0
        n = recording.samples.shape[0]
        self._win = round(window_s * recording.sample_rate_hz)
        if self._win < 1 or self._win > n:
            msg = (
                f"window_s {window_s} s does not fit the recording {recording.source or ''} "
                f"({recording.duration_s:.3f} s)"
            )
            raise ValueError(msg)
        self.dropped_tail_samples = n % self._win

    @property
    def windows(self) -> int:
        """Whole windows in the recording (a pass of the replay)."""
        return int(self.recording.samples.shape[0] // self._win)

    def read(self, duration_s: float | None = None, timeout_s: float = 10.0) -> TimedWindow:
        n = self.recording.samples.shape[0]
        win = self._win if duration_s is None else round(duration_s * self.sample_rate_hz)
        if self._pos + win > n:
            if not self.loop:
                raise StopIteration
            self._pos = 0
        if self.realtime:
            if self._t0 is None:
                self._t0 = time.monotonic()
            due = self._t0 + self._emitted_s + win / self.sample_rate_hz
            wait = due - time.monotonic()
            if wait > timeout_s:
                raise TimeoutError(f"next window is due in {wait:.2f} s, beyond {timeout_s} s")
            if wait > 0:
                time.sleep(wait)
        chunk = self.recording.samples[self._pos : self._pos + win]
        out = TimedWindow(
            start_s=self.start_s + self._emitted_s,
            window=VibrationWindow(
                samples=chunk,
                sample_rate_hz=self.sample_rate_hz,
                rpm=self.recording.rpm,
                source=self.recording.source,
            ),
        )
        self._pos += win
        self._emitted_s += win / self.sample_rate_hz
        return out

    def close(self) -> None:
        self._pos = self.recording.samples.shape[0]
        self.loop = False

    def __iter__(self) -> Iterator[TimedWindow]:
        return self

    def __next__(self) -> TimedWindow:
        return self.read()

    def __enter__(self) -> VibrationReplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
