"""`inspect-app adapt`: teach a line from N labeled parts and save a new version of its model."""

from __future__ import annotations

import argparse
import sys

from inspect_app.home import resolve_home
from inspect_app.teach import DEFAULT_TARGET_MISS_RATE, TeachOptions, teach_line
from sensors.errors import DataError

HELP = "teach a line from N labeled parts (prompt tuning of the frozen backbone)"
DESCRIPTION = """\
Teach line L from a labeled dataset folder (labels.csv, MVTec AD or class-per-folder; see
DESIGN §3). A stratified sample of N parts is drawn (every class present, at least 3 parts each);
the pretrained backbone stays frozen and only the line's prompt tokens and a small head are
learned (or LoRA weights, or a linear probe). The good parts' features become the line's
memory: a part unlike every good part is flagged even if its defect kind was never labeled.

The threshold is set by cross-validation on those N parts so that the out-of-fold miss rate
meets --target-miss-rate; the false-reject rate that costs is printed and saved. The model is
written as a new version under HOME/lines/L and made active only once it is complete.

Example:
  inspect-app adapt --line press-3 --data parts/press-3 --samples 50
  inspect-app adapt --line bearing-7 --data recordings/ --window-s 0.5 --method lora
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--line", required=True, help="line name (a folder under HOME/lines)")
    parser.add_argument("--data", required=True, help="labeled dataset folder")
    parser.add_argument(
        "--samples", type=int, default=50, help="parts to learn from, stratified (default 50)"
    )
    parser.add_argument(
        "--method",
        choices=["prompt", "lora", "linear"],
        default="prompt",
        help="prompt tuning (default), LoRA (peft), or a linear probe on frozen features",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and the training")
    parser.add_argument(
        "--target-miss-rate",
        type=float,
        default=DEFAULT_TARGET_MISS_RATE,
        metavar="R",
        help=f"defective parts allowed to pass, as a fraction (default {DEFAULT_TARGET_MISS_RATE})",
    )
    parser.add_argument(
        "--window-s",
        type=float,
        default=None,
        metavar="S",
        help="cut long vibration recordings into S-second windows, each its own part",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _pct(x: object) -> str:
    return "n/a" if not isinstance(x, float) else f"{100 * x:.1f} %"


def run(args: argparse.Namespace) -> int:
    if args.samples < 1:
        print(f"inspect-app adapt: --samples must be positive, got {args.samples}", file=sys.stderr)
        return 2
    options = TeachOptions(
        samples=args.samples,
        method=args.method,
        seed=args.seed,
        target_miss_rate=args.target_miss_rate,
        window_s=args.window_s,
        show_progress=not args.no_progress,
    )
    home = resolve_home(args.home)
    try:
        result = teach_line(home, args.line, args.data, options)
    except (DataError, ValueError) as exc:
        print(f"inspect-app adapt: {exc}", file=sys.stderr)
        return 1
    m = result.report.as_dict()
    print(f"line {args.line}: {result.card.version} saved in {result.folder} and made active")
    print(
        f"taught from {result.n_parts} parts ({', '.join(result.card.modalities)}; "
        f"classes: {', '.join(result.card.classes) or 'none'}) with {args.method} "
        f"in {result.seconds:.0f} s"
    )
    print(f"validation ({m['n']} parts, out-of-fold, {m['n_defective']} defective):")
    print(f"  threshold          {m['threshold']:.4f}")
    print(f"  miss rate          {_pct(m['miss_rate'])} (target {_pct(args.target_miss_rate)})")
    print(f"  false-reject rate  {_pct(m['false_reject_rate'])}")
    auroc = m["auroc"]
    print(f"  AUROC              {'n/a' if auroc is None else f'{auroc:.4f}'}")
    print(f"  class accuracy     {_pct(m['class_accuracy'])}")
    for note in m["notes"]:
        print(f"  note: {note}")
    return 0
