"""Shared fixtures of the console tests: offscreen Qt, a small replayed stream, a fake line.

`QT_QPA_PLATFORM=offscreen` is set here, before anything imports Qt, so the tests need no
display. Most tests run the real pipeline, store and window around `LabelOracleBackend`, a fake
backend that fails exactly the parts labeled defective: the verdicts are known in advance, so
what the window and the log show can be checked exactly, in well under a second per test.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

from inspect_app.backends.base import BackendResult
from inspect_app.service import LoadedLine
from inspect_app.store import DefectStore
from sensors.sample import Sample

REPO = Path(__file__).resolve().parents[2]
SAMPLE_STREAM = REPO / "sample_data" / "demo-line" / "stream"
CLASSES = ("bearing_inner", "bearing_outer", "crack", "edge_chip", "missing_feature")


@dataclass
class FakeCard:
    """What a decision needs from a line card, and the sensors a hot folder waits for."""

    classes: tuple[str, ...] = CLASSES
    threshold: float = 0.5
    modalities: tuple[str, ...] = ("image",)
    image_bits: int | None = None
    roi: list[int] | None = None
    align: dict[str, Any] = field(default_factory=dict)  # pose alignment: none
    adapt: dict[str, Any] = field(default_factory=dict)


class LabelOracleBackend:
    """A FAKE backend: scores 0.9 for a part labeled defective, 0.1 for `ok`, with the label's
    class and a heat-map blob in the frame's top-left quarter. `inputs` are the Samples
    themselves (the tests' preprocess is `list`)."""

    name = "label-oracle"

    def __init__(self, classes: tuple[str, ...] = CLASSES, delay_s: float = 0.0) -> None:
        self.classes = classes
        self.delay_s = delay_s
        self.calls = 0

    def predict(self, inputs: list[Sample]) -> BackendResult:
        import time

        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        n = len(inputs)
        score = np.array([0.1 if s.label in (None, "ok") else 0.9 for s in inputs], np.float32)
        probs = np.full((n, len(self.classes)), 0.01, np.float32)
        for i, s in enumerate(inputs):
            if s.label in self.classes:
                probs[i, self.classes.index(str(s.label))] = 0.95
        heat = np.zeros((n, 8, 8), np.float32)
        heat[:, 1:3, 1:3] = 1.0
        return BackendResult(score, probs, heat, np.zeros(n, np.float32))

    def close(self) -> None:
        return None


def fake_loader(versions: dict[str, str] | None = None, delay_s: float = 0.0) -> Any:
    """A line loader over `LabelOracleBackend`: each line name gets its own version string."""
    from ui.worker import LineRuntime

    versions = versions or {}
    loaded: list[str] = []

    def load(line: str) -> LineRuntime:
        if line == "no-such-line":
            msg = f"no line model {line!r}"
            raise FileNotFoundError(msg)
        loaded.append(line)
        backend = LabelOracleBackend(delay_s=delay_s)
        card = FakeCard()
        version = versions.get(line, "v1")
        return LineRuntime(LoadedLine(backend, card, Path("."), version, None), list)

    load.loaded = loaded  # type: ignore[attr-defined]
    return load


def small_stream(out: Path, n_ok: int, n_defective: int) -> Path:
    """A copy of the first parts of the sample stream: `n_ok` good and `n_defective` bad ones."""
    if not (SAMPLE_STREAM / "labels.csv").is_file():
        pytest.skip(f"sample stream {SAMPLE_STREAM} not found")
    with (SAMPLE_STREAM / "labels.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    good = [r for r in rows if r["label"] == "ok"][:n_ok]
    bad = [r for r in rows if r["label"] != "ok"][:n_defective]
    chosen = sorted(good + bad, key=lambda r: r["part_id"])
    out.mkdir(parents=True)
    for row in chosen:
        for column in ("image", "vibration", "mask"):
            if row.get(column):
                (out / row[column]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(SAMPLE_STREAM / row[column], out / row[column])
    with (out / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(chosen)
    return out


@pytest.fixture(scope="session")
def stream_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_stream(tmp_path_factory.mktemp("stream") / "stream", n_ok=24, n_defective=8)


@pytest.fixture
def stream(stream_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(stream_template, tmp_path / "stream"))


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'inspect.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[DefectStore]:
    s = DefectStore.open(db_url)
    yield s
    s.close()
