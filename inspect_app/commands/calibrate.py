"""`inspect-app calibrate`: set a line's threshold on more labeled parts than it was taught from."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inspect_app.commands.evaluate import add_scoring_arguments, bad_count, scoring_options
from inspect_app.defaults import DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE
from inspect_app.home import resolve_home
from inspect_app.metrics import format_metric, format_rate, parts_to_show_rate
from sensors.errors import DataError

HELP = "set line L's threshold on more labeled parts (its model unchanged)"
DESCRIPTION = """\
`adapt` sets a line's threshold on about 50 parts: 25 defective parts cannot show a miss rate
below about 11 % (95 % bound), whatever --target-miss-rate asks. Once more parts are labeled (a
shift's parts checked by the operators, a check set kept aside), this command scores them with
the line's active model (or --version) and sets the threshold there, with the same rule: the
highest threshold whose miss rate on these parts meets the target. It prints the miss and
false-reject rates before and after, their 95 % bounds, and a split-half check (the threshold set
on one half of the parts, measured on the other), which says what the rule gives on parts it did
not see.

The result is a new version of the line: the same weights, adapter and exported graphs (a
TensorRT engine too: no rebuild), with the new threshold; it is made active unless
--no-activate, and a running serve picks it up on SIGHUP (systemctl reload). Roll back with
`inspect-app lines --line L --activate vN`. --dry-run prints everything and writes nothing.

The parts are scored by the line model in torch; with --backend onnxruntime (or tensorrt, on
the Jetson) by the version's exported graph (or engine): a threshold set on the scores of the
quantized graph the line runs.

The data is a labeled dataset folder (DESIGN §3). The parts the line was taught from are left out
when the folder is the adapt folder. A part that cannot be read sets nothing (on the line it is a
FAULT, never passed). Defect classes the line was never taught count as defects. Without
defective parts the threshold rejects --target-false-reject-rate of the good parts; without
good parts there is nothing to weigh the threshold against, and the command refuses.

Example:
  inspect-app calibrate --line press-3 --data parts/press-3-week2 --dry-run
  inspect-app calibrate --line press-3 --data parts/press-3-week2 --json week2-calibration.json
  inspect-app calibrate --line press-3 --data parts/press-3-week2 --target-miss-rate 0.01
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--line", required=True, help="line name (a folder under HOME/lines)")
    parser.add_argument("--data", required=True, help="labeled dataset folder")
    parser.add_argument(
        "--version", default=None, help="the version whose threshold is set (default: the active)"
    )
    parser.add_argument(
        "--target-miss-rate",
        type=float,
        default=None,
        metavar="R",
        help="defective parts allowed to pass, as a fraction (default: the one the line was "
        "taught for)",
    )
    parser.add_argument(
        "--target-false-reject-rate",
        type=float,
        default=DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE,
        metavar="R",
        help="only when the data holds no defective part: the share of good parts the "
        f"threshold may reject (default {DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE})",
    )
    parser.add_argument(
        "--no-activate",
        action="store_true",
        help="save the new version without making it active (switch with inspect-app lines)",
    )
    parser.add_argument("--dry-run", action="store_true", help="measure and print; write nothing")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the result here")
    add_scoring_arguments(
        parser, "also use the parts the line was taught from (their scores flatter the model)"
    )


def run(args: argparse.Namespace) -> int:
    for flag, rate in (
        ("--target-miss-rate", args.target_miss_rate),
        ("--target-false-reject-rate", args.target_false_reject_rate),
    ):
        if rate is not None and not 0.0 <= rate < 1.0:
            print(f"inspect-app calibrate: {flag} must be in [0, 1), got {rate}", file=sys.stderr)
            return 2
    problem = bad_count(args)
    if problem is not None:
        print(f"inspect-app calibrate: {problem}", file=sys.stderr)
        return 2
    from inspect_app.calibrate import CalibrateOptions, calibrate_line  # torch loads here

    options = CalibrateOptions(
        version=args.version,
        target_miss_rate=args.target_miss_rate,
        target_false_reject_rate=args.target_false_reject_rate,
        activate=not args.no_activate,
        dry_run=args.dry_run,
        **scoring_options(args),
    )
    home = resolve_home(args.home)
    try:
        result = calibrate_line(home, args.line, Path(args.data), options)
    except (DataError, ValueError) as exc:
        print(f"inspect-app calibrate: {exc}", file=sys.stderr)
        return 1
    before, after = result.before, result.after
    n_good = before.n - before.n_defective - before.n_fault
    print(
        f"line {args.line} {result.from_version} on {args.data}: {before.n} parts, "
        f"{before.n_defective} defective, {n_good} good, {before.n_fault} not inspected"
    )
    print(
        f"threshold {before.threshold:.4f} -> {after.threshold:.4f} (set for a {result.rule} "
        "on these parts)"
    )
    print(f"  {'':<28} {result.from_version + ' as taught':>16} {'calibrated':>12}")
    for key, label in _ROWS:
        print(
            f"  {label:<28} {format_rate(getattr(before, key)):>16} "
            f"{format_rate(getattr(after, key)):>12}"
        )
    print(f"  AUROC {format_metric(after.auroc)} (the same at any threshold)")
    if result.targets:
        print("  other miss-rate targets on these parts (--target-miss-rate):")
        for row in result.targets:
            print(
                f"    {row['target_miss_rate']:<6g} threshold {row['threshold']:.4f}: miss "
                f"{format_rate(row['miss_rate'])}, false-reject "
                f"{format_rate(row['false_reject_rate'])}"
            )
    held = result.held_out
    if held is not None:
        miss = ""
        if held.miss_rate is not None:
            worst = format_rate(held.miss_rate_max)
            miss = f"miss {format_rate(held.miss_rate)} (worst half {worst}), "
        print(
            f"split-half check (threshold set on one half, measured on the other, "
            f"{held.splits} halvings): {miss}false-reject {format_rate(held.false_reject_rate)} "
            f"(worst half {format_rate(held.false_reject_rate_max)})"
        )
    target, upper = result.target_miss_rate, after.miss_rate_upper_95
    if target is not None and upper is not None and upper > target > 0:
        print(
            f"note: {after.n_defective} defective parts cannot show a {format_rate(target)} miss "
            f"rate (95 % bound {format_rate(upper)}); that takes about "
            f"{parts_to_show_rate(target)} defective parts without a miss"
        )
    for note in result.notes + after.notes:
        print(f"note: {note}")
    if result.folder is None:
        print("dry run: nothing written")
    elif result.activated:
        print(
            f"line {args.line}: {result.version} saved in {result.folder} and made active "
            f"(was {result.from_version}; the same model with the new threshold). A running "
            f"serve loads it on SIGHUP (systemctl reload); roll back with `inspect-app lines "
            f"--line {args.line} --activate {result.from_version}`"
        )
    else:
        print(
            f"line {args.line}: {result.version} saved in {result.folder}, not active; switch "
            f"with `inspect-app lines --line {args.line} --activate {result.version}`"
        )
    if args.json:
        try:
            text = json.dumps(result.as_dict(), indent=2) + "\n"
            Path(args.json).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(
                f"inspect-app calibrate: cannot write {exc.filename}: {exc.strerror}",
                file=sys.stderr,
            )
            return 1
        print(f"result written to {args.json}")
    return 0


_ROWS = (
    ("miss_rate", "miss rate"),
    ("miss_rate_upper_95", "  at most (95 %)"),
    ("false_reject_rate", "false-reject rate"),
    ("false_reject_rate_upper_95", "  at most (95 %)"),
)
