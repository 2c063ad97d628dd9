"""Defect detection on real steel images: crops of NEU-DET with and without a boxed defect.

NEU-DET has no defect-free image, but most of its defects are boxed, and away from the boxes
the strip is plain steel of the same kind. Cutting each image into crops gives a real-image
anomaly task: a crop far from every box is `ok`, a crop that a box covers enough is defective.
One task per NEU class whose boxes leave enough of the strip free (inclusion, patches,
rolled-in scale, scratches; crazing and pitted surfaces cover nearly the whole image). Only the
images pretraining held out are used (`held_out_of_pretraining`: a fifth, 60 per class), half of
them to draw the adapt parts from and half to test on, so no image gives crops to both.

The boxes are not exhaustive (a faint spot beside a boxed one is sometimes left out), so some
`ok` crops hold an unboxed flaw; every method meets the same label noise. The crops are not
registered (texture, no fixture): what is measured is the patch memory and the classifier on a
real surface the backbone never saw labeled, the path a textured product takes.

Run (rows as in benchmarks.fewshot; OMP_NUM_THREADS=1 is how the docs' numbers were made):
    python -m benchmarks.neu_crops --seeds 0 1 2 --methods prompt classical
    python -m benchmarks.neu_crops --seeds 0 1 2 --methods prompt --backbone random
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.fewshot import DATA, Task
from sensors.dataset import LineDataset
from sensors.sample import OK_LABEL, Sample

CLASSES = ("inclusion", "patches", "rolled_in_scale", "scratches")
CROP = 64  # px of the 200 px image; the backbone sees it enlarged to its 128 px
STRIDE = 17  # 9 x 9 crop positions per image
CLEAR_PX = 4  # an ok crop keeps this far from every box
MIN_COVER = 0.15  # a defective crop is at least this much box


def crop_positions(side: int, crop: int = CROP, stride: int = STRIDE) -> list[int]:
    """Top-left corners along one side, the last one flush with the edge."""
    last = side - crop
    out = list(range(0, last + 1, stride))
    if out[-1] != last:
        out.append(last)
    return out


def classify_crops(box_mask: np.ndarray, crop: int = CROP) -> tuple[list[tuple[int, int]], ...]:
    """(ok corners, defective corners) of one image's crops, from its box mask (H, W) bool.

    ok: no box within `CLEAR_PX` of the crop; defective: boxes cover at least `MIN_COVER` of
    it. Crops in between (a box's corner) are neither.
    """
    from scipy.ndimage import binary_dilation

    near = binary_dilation(box_mask, iterations=CLEAR_PX)
    h, w = box_mask.shape
    ok, bad = [], []
    for y in crop_positions(h, crop):
        for x in crop_positions(w, crop):
            if not near[y : y + crop, x : x + crop].any():
                ok.append((y, x))
            elif box_mask[y : y + crop, x : x + crop].mean() >= MIN_COVER:
                bad.append((y, x))
    return ok, bad


def _apart(
    corners: list[tuple[int, int]], rng: np.random.Generator, k: int
) -> list[tuple[int, int]]:
    """Up to `k` corners drawn at random whose crops do not overlap."""
    chosen: list[tuple[int, int]] = []
    for i in rng.permutation(len(corners)):
        y, x = corners[int(i)]
        if all(abs(y - cy) >= CROP or abs(x - cx) >= CROP for cy, cx in chosen):
            chosen.append((y, x))
        if len(chosen) == k:
            break
    return chosen


def _crop(sample: Sample, y: int, x: int, label: str, tag: str) -> Sample:
    assert sample.frame is not None and sample.mask is not None
    mask = sample.mask[y : y + CROP, x : x + CROP]
    return Sample(
        part_id=f"{sample.part_id}@{y},{x}",
        frame=np.ascontiguousarray(sample.frame[y : y + CROP, x : x + CROP]),
        label=label,
        mask=np.ascontiguousarray(mask) if label != OK_LABEL else np.zeros_like(mask),
        meta={"crop_of": sample.part_id, "split": tag},
    )


def crop_tasks(per_image: int = 3, seed: int = 0) -> list[Task]:
    """One Task per NEU class in `CLASSES`: crops of half the held-out images to adapt from,
    crops of the other half to test on, up to `per_image` ok and defective crops each."""
    from inspect_app.pretrain_data import held_out_of_pretraining

    folder = DATA / "neu-det"
    if not (folder / "labels.csv").is_file():
        print(f"skip NEU-DET crops: {folder} not found", file=sys.stderr)
        return []
    ds = LineDataset.open(folder)
    unseen = held_out_of_pretraining(ds)
    rng = np.random.default_rng(seed)
    tasks = []
    for name in CLASSES:
        idx = [i for i, label in enumerate(ds.labels) if label == name and unseen[i]]
        order = [idx[int(i)] for i in rng.permutation(len(idx))]
        half = len(order) // 2
        parts: dict[str, list[Sample]] = {"pool": [], "test": []}
        for tag, images in (("pool", order[:half]), ("test", order[half:])):
            for i in images:
                sample = ds[i]
                assert sample.mask is not None  # NEU-DET's boxes are read into the mask
                ok, bad = classify_crops(sample.mask)
                for y, x in _apart(ok, rng, per_image):
                    parts[tag].append(_crop(sample, y, x, OK_LABEL, tag))
                for y, x in _apart(bad, rng, per_image):
                    parts[tag].append(_crop(sample, y, x, name, tag))
        tasks.append(Task(f"neu-{name} crops", "image", parts["pool"], parts["test"]))
    return tasks


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.fewshot import add_fusion_argument, report, run_tasks

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["prompt", "linear", "classical"])
    ap.add_argument("--classes", nargs="+", default=list(CLASSES), choices=CLASSES)
    ap.add_argument(
        "--backbone", default="pretrained", help="pretrained, random or a checkpoint folder"
    )
    add_fusion_argument(ap)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--resnet-epochs", type=int, default=30)
    ap.add_argument("--per-class", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.align, args.template_size = "auto", "auto"  # as `inspect-app adapt` does
    args.good_only = False  # every crop task has defective crops to adapt from
    tasks = [t for t in crop_tasks() if t.name.split()[0].removeprefix("neu-") in args.classes]
    for t in tasks:
        n_ok = sum(s.label == OK_LABEL for s in t.test)
        print(f"{t.name}: pool {len(t.pool)}, test {len(t.test)} ({n_ok} ok)", file=sys.stderr)
    report(run_tasks(tasks, args), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
