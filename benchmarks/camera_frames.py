"""How a line reads its camera's frames, measured end to end: deep samples and a region.

Each row teaches a line with `adapt --samples 50` (the shipped backbone, seed 0) and scores
held-out parts with `evaluate`, through the same `teach_line` / `evaluate_line` the commands
call. Four cases (docs/sensors.md, docs/adapt.md):

- `deep`: frames whose samples fill 12 of 16 bits (Mono12 in 16-bit PNG, as machine-vision
  cameras write them). Read at 16-bit full scale (what a reader without the line's depth does)
  the frames are nearly black; read with the line's bits (`image_sample_bits`, found by adapt)
  they are the 8-bit frames again. On NEU-DET (real steel; only the images pretraining held
  out, half to teach and half to evaluate, so no image is in both) and on image-only synthetic
  lines whose seeds pretraining never used.
- `roi`: a synthetic line's 256 px parts pasted into a 1024 x 768 camera view of a noisy grey
  conveyor, taught on the whole frame and with `--roi` on the part's rectangle.
- `fixture`: the same parts seen through the window of a plain plate the camera holds still
  (a fixture's nest): the part moves inside the window, the window's edges stay put; taught
  on the whole frame and with `--roi` on the window. The reading names the share of the frame
  adapt found staying put while the parts move (`camera_fixed_share`, docs/adapt.md).
- `turned`: the same parts arriving in any orientation (each frame turned by a random angle
  about its centre, the edges mirrored in), taught with pose alignment as adapt chooses it
  (every turn tried first: `any_turn`) and with ECC alone, as before it could.

Reads ../shared/data/neu-det for the NEU rows (skipped with a note when it is absent).

Run (OMP_NUM_THREADS=1 is how the docs' numbers were made; about 15 minutes, every case):
    python -m benchmarks.camera_frames
    python -m benchmarks.camera_frames --cases roi --lines 101
    python -m benchmarks.camera_frames --cases fixture
    python -m benchmarks.camera_frames --cases turned
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.fewshot import DATA
from inspect_app import align
from inspect_app.lines import enclosed_roi
from inspect_app.pretrain_data import held_out_of_pretraining
from inspect_app.teach import EvaluateOptions, TeachOptions, evaluate_line, teach_line
from sensors.camera import Roi
from sensors.dataset import LineDataset
from sensors.synthetic import write_line

DEEP_BITS = 12
VIEW_W, VIEW_H = 1024, 768  # the camera's view around the part (roi case)
PART_AT = (400, 300)  # where the part's frame sits in that view
PART_PX = 256
PLATE_MARGIN = 32  # fixture case: plain plate around the window the part is seen through
PLATE_GREY, SENSOR_NOISE = 150, 3.0


@dataclass
class Row:
    """One taught-and-evaluated line."""

    case: str
    data: str
    reading: str
    auroc: float | None
    miss_rate: float | None
    false_reject_rate: float | None
    class_accuracy: float | None
    pixel_auroc: float | None
    n: int
    seconds: float


def twelve_bit_copy(folder: Path, out: Path) -> Path:
    """`folder` (labels.csv with an `image` column) with every frame rewritten as 12-bit
    samples in a 16-bit PNG (0..255 -> 0..4095, no sBIT chunk: the depth must be found)."""
    out.mkdir(parents=True)
    with (folder / "labels.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    for row in rows:
        frame = _read(folder / row["image"])
        deep = np.round(frame.astype(np.float64) * ((1 << DEEP_BITS) - 1) / 255).astype(np.uint16)
        name = Path(row["image"]).with_suffix(".png")
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out / name), deep):
            msg = f"cannot write {out / name}"
            raise OSError(msg)
        row["image"] = name.as_posix()
        for column in ("mask", "boxes"):
            if row.get(column):
                _link(folder, out, row[column])
    _write_table(out, fields, rows)
    return out


# how one part's frame (True) or mask (False) is rewritten: made once per part (its random
# draws shared by frame and mask) by a case's `per_part(rng)`
Rewrite = Callable[[np.ndarray, bool], np.ndarray]


def _rewritten(
    folder: Path, out: Path, seed: int, per_part: Callable[[np.random.Generator], Rewrite]
) -> Path:
    """`folder` with every part's frame and mask rewritten, as a new dataset folder `out`."""
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    with (folder / "labels.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    for row in rows:
        change = per_part(rng)
        for column, is_frame in (("image", True), ("mask", False)):
            if not row.get(column):
                continue
            view = change(_read(folder / row[column]), is_frame)
            (out / row[column]).parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(out / row[column]), view):
                msg = f"cannot write {out / row[column]}"
                raise OSError(msg)
    _write_table(out, fields, rows)
    return out


def in_a_conveyor_view(folder: Path, out: Path, seed: int) -> Path:
    """`folder` with every frame (and mask) pasted at PART_AT into a VIEW_W x VIEW_H view of a
    grey conveyor whose noise is new for every part."""
    x, y = PART_AT

    def per_part(rng: np.random.Generator) -> Rewrite:
        def paste(part: np.ndarray, is_frame: bool) -> np.ndarray:
            shape = (VIEW_H, VIEW_W, *part.shape[2:])
            if is_frame:
                view = np.clip(rng.normal(110, 25, shape), 0, 255).astype(np.uint8)
            else:
                view = np.zeros(shape, part.dtype)
            view[y : y + part.shape[0], x : x + part.shape[1]] = part
            return view

        return paste

    return _rewritten(folder, out, seed, per_part)


def in_a_fixture(folder: Path, out: Path, seed: int) -> Path:
    """`folder` with every frame (and mask) seen through a window of a plain grey plate held
    still by the camera, PLATE_MARGIN pixels wide around it (sensor noise new every frame)."""
    m = PLATE_MARGIN

    def per_part(rng: np.random.Generator) -> Rewrite:
        def held(part: np.ndarray, is_frame: bool) -> np.ndarray:
            shape = (part.shape[0] + 2 * m, part.shape[1] + 2 * m, *part.shape[2:])
            view = np.full(shape, PLATE_GREY if is_frame else 0, np.float64)
            view[m:-m, m:-m] = part
            if is_frame:
                view += rng.normal(0, SENSOR_NOISE, shape)
            return np.clip(view, 0, 255).astype(part.dtype)

        return held

    return _rewritten(folder, out, seed, per_part)


def in_any_orientation(folder: Path, out: Path, seed: int) -> Path:
    """`folder` with every frame (and mask) turned by its own random angle about its centre."""

    def per_part(rng: np.random.Generator) -> Rewrite:
        angle = rng.uniform(0.0, 360.0)

        def turned(part: np.ndarray, is_frame: bool) -> np.ndarray:
            h, w = part.shape[:2]
            turn = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, 1.0)
            return cv2.warpAffine(
                part,
                turn,
                (w, h),
                flags=cv2.INTER_LINEAR if is_frame else cv2.INTER_NEAREST,
                borderMode=cv2.BORDER_REFLECT if is_frame else cv2.BORDER_CONSTANT,
            )

        return turned

    return _rewritten(folder, out, seed, per_part)


def _read(path: Path) -> np.ndarray:
    frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if frame is None:
        msg = f"cannot read {path}"
        raise OSError(msg)
    return frame


def _link(source: Path, out: Path, relative: str) -> None:
    """`source/relative` seen at `out/relative` (the dataset contract's paths are relative)."""
    target = out / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to((source / relative).resolve())


def _write_table(folder: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def neu_halves(out: Path) -> tuple[Path, Path] | None:
    """NEU-DET's held-out images as two folders (alternate images per class): teach, evaluate."""
    folder = DATA / "neu-det"
    if not (folder / "labels.csv").is_file():
        return None
    ds = LineDataset.open(folder)
    held = np.flatnonzero(held_out_of_pretraining(ds))
    with (folder / "labels.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    halves: tuple[list[dict[str, str]], list[dict[str, str]]] = ([], [])
    seen: dict[str, int] = {}
    for i in held:
        row = dict(rows[int(i)])
        n = seen.get(row["label"], 0)
        seen[row["label"]] = n + 1
        halves[n % 2].append(row)
    paths = []
    for name, part in zip(("teach", "evaluate"), halves, strict=True):
        path = out / name
        path.mkdir(parents=True)
        for row in part:
            for column in ("image", "boxes"):
                if row.get(column):
                    _link(folder, path, row[column])
        _write_table(path, fields, part)
        paths.append(path)
    return paths[0], paths[1]


def synthetic_halves(out: Path, seed: int) -> tuple[Path, Path]:
    """Image-only synthetic line `seed` at 256 px: 80 parts to teach, 150 others to evaluate."""
    teach = out / f"line{seed}-teach"
    test = out / f"line{seed}-evaluate"
    write_line(teach, seed, 80, 0.4, modalities=("image",), image_size=PART_PX)
    write_line(test, seed, 150, 0.4, start_index=10_000, modalities=("image",), image_size=PART_PX)
    return teach, test


def teach_and_evaluate(
    home: Path,
    case: str,
    data: str,
    reading: str,
    pair: tuple[Path, Path],
    suggested: list[int] | None = None,
    **teach: object,
) -> Row:
    line = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{case}-{data}-{reading}")[:64].rstrip("-.")
    start = time.perf_counter()
    options = TeachOptions(samples=50, seed=0, show_progress=False, **teach)  # type: ignore[arg-type]
    result = teach_line(home, line, pair[0], options)
    if suggested is not None:  # the caller's list gets the region adapt advises, if any
        suggested[:] = enclosed_roi(result.card) or []
    report = evaluate_line(home, line, pair[1], EvaluateOptions(show_progress=False))
    row = Row(
        case,
        data,
        _reading(case, reading, result.card),
        report.auroc,
        report.miss_rate,
        report.false_reject_rate,
        report.class_accuracy,
        report.pixel_auroc,
        report.n,
        time.perf_counter() - start,
    )
    print(_format(row), flush=True)
    return row


def _reading(case: str, reading: str, card: object) -> str:
    if case == "deep":
        return f"{reading} (line reads {getattr(card, 'image_bits', None) or 8} bits)"
    if case in ("roi", "fixture"):
        share = float((getattr(card, "align", None) or {}).get("camera_fixed_share", 0.0))
        return f"{reading} (camera-fixed {100 * share:.1f} %)"
    if case == "turned":
        turns = (getattr(card, "align", None) or {}).get("any_turn", False)
        return f"{reading} ({'every turn tried' if turns else 'ECC alone'})"
    return reading


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


HEADER = (
    "| case | data | frames read | AUROC | miss | false-reject | class accuracy | pixel AUROC "
    "| parts | seconds |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def _format(r: Row) -> str:
    return (
        f"| {r.case} | {r.data} | {r.reading} | {_num(r.auroc)} | {_pct(r.miss_rate)} | "
        f"{_pct(r.false_reject_rate)} | {_pct(r.class_accuracy)} | {_num(r.pixel_auroc)} | "
        f"{r.n} | {r.seconds:.0f} |"
    )


def deep_rows(tmp: Path, lines: Sequence[int]) -> list[Row]:
    rows: list[Row] = []
    home = tmp / "home"
    pairs: list[tuple[str, tuple[Path, Path]]] = []
    neu = neu_halves(tmp / "neu")
    if neu is None:
        print(f"(no NEU-DET rows: {DATA / 'neu-det'} is missing)", file=sys.stderr)
    else:
        pairs.append(("NEU-DET", neu))
    pairs += [(f"synthetic {s}", synthetic_halves(tmp / "synthetic", s)) for s in lines]
    for name, (teach, test) in pairs:
        slug = name.replace(" ", "")
        deep = (
            twelve_bit_copy(teach, tmp / f"{slug}-12bit-teach"),
            twelve_bit_copy(test, tmp / f"{slug}-12bit-evaluate"),
        )
        rows.append(teach_and_evaluate(home, "deep", name, "8-bit files", (teach, test)))
        rows.append(
            teach_and_evaluate(home, "deep", name, "12-bit, full scale", deep, image_bits=16)
        )
        rows.append(teach_and_evaluate(home, "deep", name, "12-bit, line's bits", deep))
    return rows


def _views(
    tmp: Path, case: str, lines: Sequence[int], make: Callable[[Path, Path, int], Path], name: str
) -> list[tuple[str, tuple[Path, Path]]]:
    """Per line seed, `name` (formatted with the seed) and its parts to teach and to evaluate
    rewritten by `make` (noise seeds 0 and 1)."""
    views = []
    for seed in lines:
        teach, test = synthetic_halves(tmp / f"{case}-parts", seed)
        pair = (
            make(teach, tmp / f"{case}{seed}-teach", 0),
            make(test, tmp / f"{case}{seed}-evaluate", 1),
        )
        views.append((name.format(seed=seed), pair))
    return views


def roi_rows(tmp: Path, lines: Sequence[int]) -> list[Row]:
    views = _views(
        tmp, "roi", lines, in_a_conveyor_view, f"synthetic {{seed}} in {VIEW_W}x{VIEW_H}"
    )
    return _whole_and_cropped(tmp / "home", "roi", views, Roi(*PART_AT, PART_PX, PART_PX))


def fixture_rows(tmp: Path, lines: Sequence[int]) -> list[Row]:
    views = _views(tmp, "fixture", lines, in_a_fixture, "synthetic {seed} in a fixture")
    window = Roi(PLATE_MARGIN, PLATE_MARGIN, PART_PX, PART_PX)
    return _whole_and_cropped(tmp / "home", "fixture", views, window)


def _whole_and_cropped(
    home: Path, case: str, views: list[tuple[str, tuple[Path, Path]]], exact: Roi
) -> list[Row]:
    """Each view taught on the whole frame, cropped to the region adapt then advises (when it
    advises one), and cropped to `exact`, the part's place as the view was made."""
    rows: list[Row] = []
    for name, pair in views:
        advised: list[int] = []
        rows.append(teach_and_evaluate(home, case, name, "whole frame", pair, advised))
        crops = [("adapt's advice", Roi(*advised))] if advised else []
        for label, roi in [*crops, ("exact", exact)]:
            reading = f"--roi {','.join(map(str, roi.as_list()))} ({label})"
            rows.append(teach_and_evaluate(home, case, name, reading, pair, roi=roi))
    return rows


@contextlib.contextmanager
def _every_turn_untried() -> Iterator[None]:
    """Pose alignment fitted as before `any_turn` existed: ECC alone."""
    fitted = align._fitted

    def plain(good: Any, grays: Any, method: str, any_turn: bool) -> Any:
        return fitted(good, grays, method, False)

    align._fitted = plain
    try:
        yield
    finally:
        align._fitted = fitted


def turned_rows(tmp: Path, lines: Sequence[int]) -> list[Row]:
    rows: list[Row] = []
    home = tmp / "home"
    for name, turned in _views(
        tmp, "turned", lines, in_any_orientation, "synthetic {seed}, any orientation"
    ):
        with _every_turn_untried():  # ECC alone, as before every turn could be tried
            rows.append(teach_and_evaluate(home, "turned", name, "ECC alone", turned))
        rows.append(teach_and_evaluate(home, "turned", name, "as adapt chooses", turned))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cases = ("deep", "roi", "fixture", "turned")
    parser.add_argument("--cases", nargs="+", choices=cases, default=list(cases))
    parser.add_argument(
        "--lines",
        type=int,
        nargs="+",
        default=[101, 202],
        help="seeds of the image-only synthetic lines (never used in pretraining)",
    )
    args = parser.parse_args(argv)
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows: list[Row] = []
        if "deep" in args.cases:
            rows += deep_rows(Path(tmp) / "deep", args.lines)
        if "roi" in args.cases:
            rows += roi_rows(Path(tmp) / "roi", args.lines)
        if "fixture" in args.cases:
            rows += fixture_rows(Path(tmp) / "fixture", args.lines)
        if "turned" in args.cases:
            rows += turned_rows(Path(tmp) / "turned", args.lines)
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
