"""How visible are the synthetic lines' image defects to a 128 px camera? A floor for any method.

The generator can make each defective part's good twin (the same physical part without the
defect: same surface, pose, lighting and noise). For every image defect of the few-shot test
parts this measures its signal-to-noise ratio at the model's input size:

    SNR = max over the defect's mask of |defective - twin| (colour mean, 5 px box filter)
          / the spread of the registered good parts at that pixel (models.template)

i.e. how many good-part spreads the strongest smoothed change of the defect stands above the
way good parts already differ from one another there. A defect below ~2 cannot be told from the
good parts' own variation by any pixel comparison without also rejecting good parts; a learned
detector does not see more than the pixels hold.

Run:
    python -m benchmarks.visibility                 # the few-shot benchmark's test lines
    python -m benchmarks.visibility --lines 101 202 303 404 505
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.fewshot import synthetic_tasks
from inspect_app.align import fit_alignment, register
from models.inputs import frames_to_tensor
from models.template import PixelTemplate
from sensors.synthetic import LineSpec, make_part

SIZE = 128
BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, float("inf")))


def _rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        msg = f"{path}: cannot be read as an image"
        raise ValueError(msg)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def line_snrs(
    folder: Path, seed: int, n_good: int = 25, size: int = SIZE
) -> list[tuple[str, float, float]]:
    """(label, severity, SNR) of every image defect in a written test line folder, at `size`."""
    rows = list(csv.DictReader((folder / "labels.csv").open()))
    spec = LineSpec.from_seed(seed, image_size=size)
    goods = [r for r in rows if r["label"] == "ok"][:n_good]
    images = frames_to_tensor([_rgb(folder / r["image"]) for r in goods], size)[0]
    alignment = fit_alignment(images)
    template = PixelTemplate(3, size, 8)
    template.fit(register(images, None, alignment.reference)[0])
    spread = template.spread.mean(0)  # (S, S)
    out = []
    for r in rows:
        if not r["mask"]:
            continue  # a vibration-only defect
        index = int(r["part_id"].rsplit("-", 1)[1])
        bad, twin = make_part(spec, index, r["label"]), make_part(spec, index)
        assert bad.image is not None and twin.image is not None and bad.mask is not None
        pair = frames_to_tensor([bad.image, twin.image], size)[0]
        diff = (pair[0] - pair[1]).abs().mean(0)[None, None]
        diff = F.avg_pool2d(diff, 5, stride=1, padding=2, count_include_pad=False)[0, 0]
        grown = cv2.dilate(bad.mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        snr = float((diff / spread)[torch.from_numpy(grown)].max())
        out.append((r["label"], float(r["meta_severity"]), snr))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, nargs="+", default=[101, 202, 303])
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "inspect-app-fewshot",
        help="the few-shot benchmark's line cache (written if missing)",
    )
    ap.add_argument(
        "--size", type=int, default=SIZE, help=f"camera image size in pixels (default {SIZE})"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    # the few-shot benchmark's folders (written if missing) at its size; other sizes beside them
    synthetic_tasks(args.cache, args.lines, pool=120, test=120, image_size=args.size)
    suffix = "" if args.size == SIZE else f"-{args.size}px"
    by_class: dict[str, list[float]] = defaultdict(list)
    for seed in args.lines:
        folder = args.cache / f"synth-{seed}-test-120{suffix}"
        for label, _, snr in line_snrs(folder, seed, size=args.size):
            by_class[label].append(snr)
    head = " | ".join(f"SNR {lo:g}-{hi:g}" for lo, hi in BINS).replace("-inf", "+")
    print(f"| class | defects | {head} | median SNR |")
    print("| --- | --- |" + " --- |" * (len(BINS) + 1))
    every = [v for vs in by_class.values() for v in vs]
    for label, values in [*sorted(by_class.items()), ("all", every)]:
        v = np.array(values)
        shares = " | ".join(f"{np.mean((v >= lo) & (v < hi)):.0%}" for lo, hi in BINS)
        print(f"| {label} | {v.size} | {shares} | {np.median(v):.2f} |")
    print(f"lines {args.lines}, {args.size} px, 25 good parts per line make the spread")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
