"""Runs the real service (store, replay, signals, HTTP) around a fake backend, for the
reliability tests that kill it. Not a test module itself: `python fake_line_service.py ...`."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspect_app.backends.base import BackendResult
from inspect_app.service import LoadedLine, ServeOptions, serve
from sensors.sample import Sample


@dataclass
class FakeCard:
    classes: tuple[str, ...] = ("dent",)
    threshold: float = 0.5
    image_bits: int | None = None
    roi: list[int] | None = None


class FakeSlowBackend:
    """Scores by label, slowly enough that a test can kill the service mid-run."""

    name = "fake"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def predict(self, inputs: list[Sample]) -> BackendResult:
        time.sleep(self.delay_s)
        n = len(inputs)
        score = np.array([0.9 if s.label == "dent" else 0.1 for s in inputs], np.float32)
        return BackendResult(
            score,
            np.ones((n, 1), np.float32),
            np.ones((n, 2, 2), np.float32),
            np.zeros(n, np.float32),
        )

    def close(self) -> None:
        return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--http", default="127.0.0.1:0")
    parser.add_argument("--line", default="fake-line")
    parser.add_argument("--snapshot-max-parts", type=int, default=2000)
    parser.add_argument("--give-up-s", type=float, default=60.0)
    parser.add_argument(
        "--reload-version", default=None, help="what a reload (SIGHUP) loads (default: HOME's)"
    )
    args = parser.parse_args()
    options = ServeOptions(
        home=args.home,
        line=args.line,
        source=args.source,
        db_url=args.db,
        http=args.http,
        batch_size=2,
        store_give_up_s=args.give_up_s,
        snapshot_max_parts=args.snapshot_max_parts,
    )
    loaded = LoadedLine(FakeSlowBackend(args.delay_s), FakeCard(), args.home, "v1", None)
    loader = None
    if args.reload_version is not None:
        version = args.reload_version

        def loader() -> LoadedLine:
            return LoadedLine(FakeSlowBackend(args.delay_s), FakeCard(), args.home, version, None)

    return serve(options, loaded=loaded, preprocess=list, loader=loader)


if __name__ == "__main__":
    sys.exit(main())
