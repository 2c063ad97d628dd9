"""Shared helpers for the sensors tests: small files written on the fly, and the real data path."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def wav_bytes(samples: np.ndarray, rate: int, bits: int, is_float: bool = False) -> bytes:
    """A RIFF/WAVE file for `samples` (N,) or (N, C) in [-1, 1), written by hand for any width."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n_channels = x.shape[1]
    if is_float:
        raw = x.astype(f"<f{bits // 8}").tobytes()
        tag = 3
    elif bits == 8:
        raw = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
        tag = 1
    elif bits == 24:
        v = np.clip(np.round(x * (1 << 23)), -(1 << 23), (1 << 23) - 1).astype(np.int32)
        b = v.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        raw = b.tobytes()
        tag = 1
    else:
        scale = float(2 ** (bits - 1))
        v = np.clip(np.round(x * scale), -scale, scale - 1).astype(f"<i{bits // 8}")
        raw = v.tobytes()
        tag = 1
    block = n_channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, n_channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(raw)) + raw
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.fixture
def write_wav(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, samples: np.ndarray, rate: int = 8000, bits: int = 16, **kw: bool) -> Path:
        path = tmp_path / name
        path.write_bytes(wav_bytes(samples, rate, bits, **kw))
        return path

    return write


@pytest.fixture
def write_image(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, image: np.ndarray) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(path.suffix, image)
        assert ok, name
        path.write_bytes(buf.tobytes())
        return path

    return write


def _shared(name: str) -> Path:
    folder = (SHARED_DATA / name).resolve()
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"real data {name!r} not found at {folder} (../shared/data beside the repo)")
    return folder


@pytest.fixture(scope="session")
def cwru_folder() -> Path:
    """The real CWRU bearing recordings beside the checkout, or skip saying why."""
    return _shared("cwru")


@pytest.fixture(scope="session")
def neu_folder() -> Path:
    """The real NEU-DET steel images beside the checkout, or skip saying why."""
    return _shared("neu-det")
