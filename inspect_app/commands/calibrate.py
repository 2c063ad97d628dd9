"""`inspect-app calibrate`: set a line's threshold on more labeled parts than it was taught from."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from inspect_app.commands.adapt import defect_log_group
from inspect_app.commands.evaluate import add_scoring_arguments, bad_count, scoring_options
from inspect_app.defaults import DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE
from inspect_app.home import default_db_url, missing_log, resolve_home
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

From the defect log (--from-db): the line's own logged scores, no files read again. Each part
of the version's model (and of its earlier or later calibrations) is labeled by the operator's
last action in the console (confirm, false alarm, relabel), else by the label it was replayed
with, else by the machine's call: a FAIL no one reviewed counts as defective, so the threshold
only rises past rejects the operators have looked at, and a PASS no one corrected counts as good
(a defect that passed unnoticed flatters the miss rate). Unless some passed parts were checked
(confirmed, or relabelled as escapes) the threshold does not rise at all (--trust-passes lets
it). The result says how many parts each rule labeled. --since / --until pick a window
(2026-03-02, 2026-03-02T06:00 in this machine's time zone, an ISO time with an offset, or 8h /
7d before now).

Example:
  inspect-app calibrate --line press-3 --data parts/press-3-week2 --dry-run
  inspect-app calibrate --line press-3 --from-db --since 8h --dry-run
  inspect-app calibrate --line press-3 --data parts/press-3-week2 --json week2-calibration.json
  inspect-app calibrate --line press-3 --data parts/press-3-week2 --target-miss-rate 0.01
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--line", required=True, help="line name (a folder under HOME/lines)")
    parser.add_argument("--data", help="labeled dataset folder (required unless --from-db)")
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
    group = defect_log_group(
        parser,
        "set the threshold on the scores the line logged, as the operators corrected them,",
        "use the line's logged, operator-reviewed parts",
    )
    group.add_argument(
        "--trust-passes",
        action="store_true",
        help="let the threshold rise although no passed part was checked by an operator "
        "(every PASS taken as good; without this it may only stay or come down)",
    )
    group.add_argument("--since", metavar="T", help="parts logged from this time (inclusive)")
    group.add_argument("--until", metavar="T", help="up to this time (exclusive; default now)")


# what --from-db cannot change: the scores are the logged ones
_SCORING_FLAGS = (
    ("--backend", "backend", "torch"),
    ("--batch-size", "batch_size", 1),
    ("--window-s", "window_s", None),
    ("--threads", "threads", None),
)


def _source_problem(args: argparse.Namespace) -> str | None:
    """Why the parts' source (--data or --from-db and its options) cannot be used as given."""
    if (args.data is None) == (not args.from_db):
        return "give either --data DIR or --from-db"
    if args.from_db:
        for flag, name, default in _SCORING_FLAGS:
            if getattr(args, name) != default:
                return f"{flag} scores a --data folder; --from-db uses the scores the line logged"
    elif args.db or args.since or args.until or args.trust_passes:
        return "--db, --since, --until and --trust-passes are for the defect log: add --from-db"
    return None


def _log_window(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    """--since / --until as aware times in this machine's zone (ValueError naming the bad one)."""
    from inspect_app.report import parse_window, plant_zone

    return parse_window(args.since, args.until, plant_zone(None)[0])


def run(args: argparse.Namespace) -> int:
    for flag, rate in (
        ("--target-miss-rate", args.target_miss_rate),
        ("--target-false-reject-rate", args.target_false_reject_rate),
    ):
        if rate is not None and not 0.0 <= rate < 1.0:
            print(f"inspect-app calibrate: {flag} must be in [0, 1), got {rate}", file=sys.stderr)
            return 2
    problem = bad_count(args) or _source_problem(args)
    if problem is not None:
        print(f"inspect-app calibrate: {problem}", file=sys.stderr)
        return 2
    try:
        since, until = _log_window(args)
    except ValueError as exc:
        print(f"inspect-app calibrate: {exc}", file=sys.stderr)
        return 2
    home = resolve_home(args.home)
    db = args.db or default_db_url(home)
    if args.from_db:
        problem = missing_log(db)
        if problem is not None:
            print(f"inspect-app calibrate: {problem}", file=sys.stderr)
            return 1
    from inspect_app.calibrate import (  # torch loads here
        CalibrateOptions,
        calibrate_from_log,
        calibrate_line,
    )
    from inspect_app.store import StoreError

    options = CalibrateOptions(
        version=args.version,
        target_miss_rate=args.target_miss_rate,
        target_false_reject_rate=args.target_false_reject_rate,
        activate=not args.no_activate,
        dry_run=args.dry_run,
        trust_passes=args.trust_passes,
        **scoring_options(args),
    )
    try:
        if args.from_db:
            result = calibrate_from_log(home, args.line, db, options, since, until)
        else:
            result = calibrate_line(home, args.line, Path(args.data), options)
    except (DataError, ValueError, StoreError) as exc:
        print(f"inspect-app calibrate: {exc}", file=sys.stderr)
        return 1
    before, after = result.before, result.after
    n_good = before.n - before.n_defective - before.n_fault
    print(
        f"line {args.line} {result.from_version} on {args.data or result.data}: {before.n} parts, "
        f"{before.n_defective} defective, {n_good} good, {before.n_fault} not inspected"
    )
    if result.log is not None:
        log = result.log
        print(
            f"labels: {log['operator']} by operators, {log['replayed']} as replayed, "
            f"{log['unreviewed_fail']} unreviewed FAIL taken as defective, "
            f"{log['unreviewed_pass']} unreviewed PASS as good"
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
        print("dry run: nothing written" if args.dry_run else "nothing written")
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
