"""How visible are the synthetic lines' image defects to the camera? A floor for any method.

The generator can make each defective part's good twin (the same physical part without the
defect: same surface, pose, lighting and noise), so every image defect of the few-shot test
parts has an exact signal, `defective - twin`. Two measures of it, at the frame size given:

- SNR = max over the defect's mask of |defective - twin| (colour mean, 5 px box filter)
  / the spread of the registered good parts at that pixel (models.template): how many good-part
  spreads the strongest smoothed change of the defect stands above the way good parts already
  differ from one another there. Blind to a defect's extent: a long thin scratch adds up along
  its length for a detector that follows it, not in a 5 px box.
- d' of the matched filter that knows the defect (its place and its shape), the best any
  linear pixel comparison can do: the signal is whitened by the good parts' per-pixel spread
  and put through the template's own shading removal (plane + high-pass), and d' is its energy
  over the standard deviation, across 25 registered good parts (leave-one-out), of their
  deviations projected on it (spatially correlated variation - a part a little larger, a
  texture a little off - counts, unlike in a sum over pixels). Knowing where to look, such a
  detector misses a defect at a 2 % false-reject rate with probability Phi(2.054 - d'); the
  issue's 0.5 % miss at 2 % false-reject needs d' >= 4.63 for each defect. A detector that must
  search the part for the defect does worse, so these are lower bounds on its misses.

Run:
    python -m benchmarks.visibility                 # the few-shot benchmark's test lines
    python -m benchmarks.visibility --lines 101 202 303 404 505 --size 256
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import norm

from benchmarks.fewshot import cached_line
from inspect_app.align import fit_alignment, register, warp_images
from models.inputs import frames_to_tensor
from models.template import PixelTemplate, TemplateConfig
from sensors.sample import OK_LABEL
from sensors.synthetic import LineSpec, make_part, visible_in

SIZE = 128
BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, float("inf")))
FALSE_REJECT = 0.02  # the operating point: 0.5 % missed at 2 % of good parts rejected
TARGET_MISS = 0.005
NEEDED_DPRIME = float(norm.ppf(1 - FALSE_REJECT) + norm.ppf(1 - TARGET_MISS))  # 4.63


@dataclass(frozen=True)
class DefectVisibility:
    """How far one image defect stands above the good parts' own variation."""

    label: str
    severity: float
    snr: float  # strongest 5 px box change over the per-pixel good spread
    dprime: float  # the matched filter that knows the defect (module docstring)

    @property
    def oracle_miss(self) -> float:
        """The known-defect matched filter's chance to pass it at a 2 % false-reject rate."""
        return float(norm.cdf(norm.ppf(1 - FALSE_REJECT) - self.dprime))


def _rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        msg = f"{path}: cannot be read as an image"
        raise ValueError(msg)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def line_visibility(
    folder: Path, seed: int, n_good: int = 25, size: int = SIZE
) -> list[DefectVisibility]:
    """Every image defect of a written test line folder, at `size` px (module docstring)."""
    rows = list(csv.DictReader((folder / "labels.csv").open()))
    spec = LineSpec.from_seed(seed, image_size=size)
    goods = [r for r in rows if r["label"] == "ok"][:n_good]
    images = frames_to_tensor([_rgb(folder / r["image"]) for r in goods], size)[0]
    alignment = fit_alignment(images)
    registered = register(images, None, alignment.reference)[0]
    template = PixelTemplate(3, size, 8)
    template.fit(registered)
    spread = template.spread.mean(0)  # (S, S)
    # the matched filter works on the colours as the template sees them, shading removed
    shading = PixelTemplate(3, size, 8, TemplateConfig(gradient=False).at_scale(size // SIZE))
    shading.fit(registered)
    n = registered.shape[0]
    # each good part against the mean of the others: (x - mean) * n / (n - 1)
    good_dev = shading._without_shading((registered - shading.mean) / shading.spread)
    good_dev = good_dev * (n / (n - 1))
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
        # the defect's signal where the template sees it: the pair moved by the twin's warp
        warps = register(pair[1:], None, alignment.reference)[1].warps
        moved = warp_images(pair, warps * 2)
        signal = shading._without_shading(((moved[0] - moved[1]) / shading.spread)[None])[0]
        energy = float((signal * signal).sum())
        spread_along = float((good_dev * signal).flatten(1).sum(1).std())
        dprime = energy / max(spread_along, 1e-12)
        out.append(DefectVisibility(r["label"], float(r["meta_severity"]), snr, dprime))
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
    by_class: dict[str, list[DefectVisibility]] = defaultdict(list)
    by_line = []
    for seed in args.lines:
        folder = cached_line(args.cache, seed, "test", 120, 100000, args.size)
        found = line_visibility(folder, seed, size=args.size)
        for v in found:
            by_class[v.label].append(v)
        labels = [r["label"] for r in csv.DictReader((folder / "labels.csv").open())]
        by_line.append((seed, found, sum(label != OK_LABEL for label in labels)))
    every = [v for vs in by_class.values() for v in vs]
    table = [*sorted(by_class.items()), ("all", every)]
    head = " | ".join(f"SNR {lo:g}-{hi:g}" for lo, hi in BINS).replace("-inf", "+")
    print(f"| class | defects | {head} | median SNR |")
    print("| --- | --- |" + " --- |" * (len(BINS) + 1))
    for label, found in table:
        snr = np.array([v.snr for v in found])
        shares = " | ".join(f"{np.mean((snr >= lo) & (snr < hi)):.0%}" for lo, hi in BINS)
        print(f"| {label} | {snr.size} | {shares} | {np.median(snr):.2f} |")
    print()
    print(
        f"| class | defects | d' < 3 | d' < {NEEDED_DPRIME:.2f} | median d' | "
        f"known-defect miss at {FALSE_REJECT:.0%} false-reject |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for label, found in table:
        d = np.array([v.dprime for v in found])
        miss = np.mean([v.oracle_miss for v in found])
        print(
            f"| {label} | {d.size} | {np.mean(d < 3):.0%} | {np.mean(d < NEEDED_DPRIME):.0%} | "
            f"{np.median(d):.1f} | {miss:.1%} |"
        )
    print()
    # on a fused line a class the vibration shows too (crack) can be caught there instead
    print(
        "| line | image defects | known-defect miss | over all the line's defective parts, "
        "classes only the camera sees |"
    )
    print("| --- | --- | --- | --- |")
    for seed, found, n_defective in by_line:
        miss = np.mean([v.oracle_miss for v in found]) if found else 0.0
        camera_only = sum(v.oracle_miss for v in found if not visible_in(v.label, "vibration"))
        print(f"| {seed} | {len(found)} | {miss:.1%} | {camera_only / max(n_defective, 1):.2%} |")
    print(f"lines {args.lines}, {args.size} px, 25 good parts per line make the spread")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
