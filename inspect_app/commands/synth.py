"""`inspect-app synth`: generate a synthetic line as a dataset folder (labels.csv contract)."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from sensors.synthetic import LineSpec, WriteOptions, write_line
from sensors.synthetic.catalog import DEFECT_CLASSES, MODALITIES

HELP = "generate a synthetic line dataset (camera frames, masks, vibration)"
DESCRIPTION = f"""\
Generate a synthetic production line as a dataset folder in the labels.csv contract: part
images (with defect masks) and vibration windows from the machine each part runs on.

A line is drawn from --line-seed: its surface family, part outline and features, lighting,
machine kinematics (rpm, bearing geometry, gear teeth, resonances) and its 3-5 defect classes.
Parts are numbered from --start-index, so disjoint ranges of one line give different parts.

Defect classes: {", ".join(DEFECT_CLASSES)}.

Seeds 1-999 are held out for evaluation and 15 is the demo line: never pretrain on them
(see docs/synthetic.md).

Example (the demo line's adaptation set, 60 parts, 40 % defective):
  inspect-app synth --out data/demo/adapt --line-seed 15 --parts 60 --defect-fraction 0.4 \\
      --split train --image-size 224 --image-format jpg --vibration-format npy16 --duration 0.5
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    parser.add_argument(
        "--line-seed", type=int, default=15, metavar="N", help="line (default 15, the demo)"
    )
    parser.add_argument("--parts", type=int, default=100, metavar="N", help="parts (default 100)")
    parser.add_argument(
        "--defect-fraction", type=float, default=0.15, metavar="F",
        help="share of defective parts, spread evenly over the line's classes (default 0.15)",
    )  # fmt: skip
    parser.add_argument(
        "--start-index", type=int, default=0, metavar="I",
        help="number of the first part (default 0)",
    )  # fmt: skip
    parser.add_argument("--split", choices=("train", "test"), default=None, help="split column")
    parser.add_argument(
        "--modalities", default=",".join(MODALITIES), metavar="M",
        help="sensors the line has: image,vibration (default), image or vibration",
    )  # fmt: skip
    parser.add_argument(
        "--classes", default=None, metavar="C,C",
        help="fix the defect classes instead of drawing them from the seed",
    )  # fmt: skip
    parser.add_argument("--image-size", type=int, default=256, metavar="PX", help="(default 256)")
    parser.add_argument("--image-format", choices=("png", "jpg"), default="png")
    parser.add_argument("--jpeg-quality", type=int, default=90, metavar="Q")
    parser.add_argument(
        "--vibration-format", choices=("npy", "npy16", "wav"), default="npy",
        help="npy: float32 in g; npy16: float16 in g (half the size); wav: 16-bit PCM",
    )  # fmt: skip
    parser.add_argument("--sample-rate", type=float, default=25600.0, metavar="HZ")
    parser.add_argument("--duration", type=float, default=1.0, metavar="S", help="window (s)")
    parser.add_argument(
        "--housing-hz", type=float, default=None, metavar="HZ",
        help="the frequency the machine's housing rings at, where a bearing's impacts show "
        "(default: drawn from the seed in 2.3-4.7 kHz; e.g. 8000 for a stiffer machine)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset")


def run(args: argparse.Namespace) -> int:
    modalities = tuple(m.strip() for m in args.modalities.split(",") if m.strip())
    classes = None
    if args.classes:
        classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    try:
        options = WriteOptions(
            image_format=args.image_format,
            jpeg_quality=args.jpeg_quality,
            vibration_format=args.vibration_format,
        )
        spec = LineSpec.from_seed(
            args.line_seed, modalities=modalities, classes=classes, housing_hz=args.housing_hz
        )
        with tqdm(total=args.parts, desc=f"synth {spec.name}", unit="part") as bar:
            written = write_line(
                args.out, args.line_seed, args.parts, args.defect_fraction,
                start_index=args.start_index, split=args.split, modalities=modalities,
                classes=classes, image_size=args.image_size, sample_rate_hz=args.sample_rate,
                duration_s=args.duration, housing_hz=args.housing_hz, options=options,
                overwrite=args.overwrite,
                progress=bar.update,
            )  # fmt: skip
    except ValueError as exc:
        print(f"inspect-app synth: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{k} {v}" for k, v in sorted(written.counts.items()))
    print(
        f"wrote {written.n_parts} parts of {spec.name} ({spec.surface.family}, "
        f"{spec.geometry.shape}) to {written.folder}: {counts}; {written.n_masks} masks"
    )
    return 0
