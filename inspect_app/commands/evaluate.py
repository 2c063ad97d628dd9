"""`inspect-app evaluate`: score a labeled dataset with a line's model (DESIGN §5 metrics)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from inspect_app.defaults import BACKEND_CHOICES, PRECISIONS, precision_problem
from inspect_app.home import resolve_home
from inspect_app.metrics import (
    COMPARED,
    PARTS_CSV_COLUMNS,
    Comparison,
    PartResult,
    Report,
    compare_versions,
    format_metric,
    format_rate,
    part_rows,
)
from sensors.errors import DataError

HELP = "score a labeled dataset with line L: miss rate, false rejects, AUROC, ..."
DESCRIPTION = """\
Score every part of a labeled dataset folder with line L's active model (or --version) and
print the metrics of DESIGN §5: miss rate, false-reject rate, AUROC, accuracy, class accuracy,
per-class counts and recall, the threshold, latency p50/p95 and, where the data has defect
masks, the heat-map's pixel AUROC. With --json FILE the metrics are also written as JSON; with
--parts-csv FILE every part's verdict, score and outcome (caught, missed, passed, false_reject,
fault), to find the parts a line misses or rejects.

A part that cannot be read is counted as FAIL (never PASS) and listed under "faults". A defect
class that the line was never taught still counts as a defect; its class cannot be named and
per_class says so. When the folder is the one the line was taught from, the adapt parts are
left out (their scores would flatter the model), and so are parts in any folder that read the
same as an adapt part (copies under other names). With a `split` column, the `test` rows are
scored.

The parts are scored by the line model in torch; --backend onnxruntime scores them with the
version's exported graph (--precision fp16 / int8: the reduced-precision graph export wrote),
--backend tensorrt with its TensorRT engine (on the Jetson): the numbers of what runs on the
line, quantized graphs and engines included.

With --against VERSION the same parts are scored by a second version of the line too: both
versions' rates on the parts both scored, and which parts the evaluated version catches,
misses, rejects or passes where the other decides the opposite (in --json under "against"):
what switching versions would change on this data.

Example:
  inspect-app evaluate --line press-3 --data parts/press-3-week2 --json week2.json
  inspect-app evaluate --line press-3 --version v3 --against v2 --data parts/press-3-check
  inspect-app evaluate --line press-3 --data parts/press-3-week2 --parts-csv week2-parts.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--line", required=True, help="line name (a folder under HOME/lines)")
    parser.add_argument("--data", required=True, help="labeled dataset folder")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the metrics here")
    parser.add_argument(
        "--parts-csv",
        metavar="FILE",
        default=None,
        help="write one row per part: part_id, label, verdict, outcome (caught, missed, passed, "
        "false_reject, fault), defect_score, predicted_class, fault",
    )
    parser.add_argument("--version", default=None, help="a version folder (default: the active)")
    parser.add_argument(
        "--against",
        metavar="VERSION",
        default=None,
        help="also score the parts with another version of the line (the active one, before "
        "switching to a new one with `inspect-app lines --activate`) and show the two side by "
        "side on the parts both scored, with the parts they decide differently",
    )
    add_scoring_arguments(parser, "also score the parts the line was taught from")


def run(args: argparse.Namespace) -> int:
    problem = bad_count(args)
    if problem is not None:
        print(f"inspect-app evaluate: {problem}", file=sys.stderr)
        return 2
    from inspect_app.teach import EvaluateOptions, evaluate_line  # torch loads here: checks first

    options = EvaluateOptions(version=args.version, **scoring_options(args))
    home = resolve_home(args.home)
    comparison = None
    try:
        if args.against is not None:
            this_version = _check_against(home, args.line, args.version, args.against)
        report = evaluate_line(home, args.line, Path(args.data), options)
        if args.against is not None:
            comparison = _compare(home, args, options, report, this_version)
    except (DataError, ValueError) as exc:
        print(f"inspect-app evaluate: {exc}", file=sys.stderr)
        return 1
    m = report.as_dict()
    print(f"line {args.line} on {args.data}: {m['n']} parts, {m['n_defective']} defective")
    for key in (
        "miss_rate",
        "miss_rate_upper_95",
        "false_reject_rate",
        "false_reject_rate_upper_95",
        "auroc",
        "accuracy",
        "class_accuracy",
        "pixel_auroc",
        "threshold",
        "n_fault",
    ):
        if key in m:
            print(f"  {key:<26} {format_metric(m[key])}")
    lat = m["latency_ms"]
    p50, p95 = format_metric(lat["p50"]), format_metric(lat["p95"])
    print(f"  {'latency_ms':<26} p50 {p50}  p95 {p95}")
    print("  per class:")
    for label, stats in m["per_class"].items():
        line = f"    {label:<18} n={stats['n']:<5} recall={format_metric(stats['recall'])}"
        if "note" in stats:
            line += f"  ({stats['note']})"
        print(line)
    for note in m["notes"]:
        print(f"  note: {note}")
    if comparison is not None:
        _print_comparison(comparison, this_version)
        m["against"] = comparison.as_dict()
    try:  # after the metrics are printed: a path that cannot be written loses nothing else
        if args.json:
            Path(args.json).write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
            print(f"metrics written to {args.json}")
        if args.parts_csv:
            write_parts_csv(Path(args.parts_csv), report.parts, report.threshold)
            print(f"parts written to {args.parts_csv}")
    except OSError as exc:
        print(f"inspect-app evaluate: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def add_scoring_arguments(parser: argparse.ArgumentParser, adapt_parts_help: str) -> None:
    """How the parts are scored, for evaluate and calibrate: the vibration window, batches,
    the backend and its threads, the adapt parts, the progress bar."""
    parser.add_argument(
        "--window-s",
        type=float,
        default=None,
        metavar="S",
        help="vibration window length (default: the one the line was taught with)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1, help="parts per model call (default 1, as on a line)"
    )
    _add_backend_arguments(parser)
    parser.add_argument("--include-adapt-parts", action="store_true", help=adapt_parts_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def scoring_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options `add_scoring_arguments` read, as `teach.EvaluateOptions` fields."""
    return {
        "window_s": args.window_s,
        "batch_size": args.batch_size,
        "include_adapt_parts": args.include_adapt_parts,
        "show_progress": not args.no_progress,
        "backend": args.backend,
        "threads": args.threads,
        "precision": args.precision,
    }


def bad_count(args: argparse.Namespace) -> str | None:
    """Why --batch-size, --threads or --precision cannot be used (None when all can)."""
    for flag, count in (("--batch-size", args.batch_size), ("--threads", args.threads)):
        if count is not None and count < 1:
            return f"{flag} must be positive, got {count}"
    return precision_problem(args.backend, args.precision)


def _add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend and --threads: score with what the line runs."""
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="torch",
        help="what scores the parts (default: torch, the line model itself); onnxruntime runs "
        "the version's exported graph (model.onnx, made on first use when there is none) and "
        "tensorrt its engine (model.engine, on a Jetson): the scores the line decides on with "
        "that serve --backend",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="onnxruntime's CPU threads (default: its own choice)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="which exported graph --backend onnxruntime runs: fp32 (model.onnx, default), or "
        "the fp16 / int8 graph `inspect-app export --fp16 / --int8` wrote, to know what a "
        "reduced-precision graph decides before a line runs it",
    )


def _check_against(home: Path, line: str, version: str | None, against: str) -> str:
    """The evaluated version's name, once `against` is known to be another version of the
    line (checked before any part is scored)."""
    from inspect_app.lines import active_version, version_dir

    this_version = version or active_version(home, line)
    version_dir(home, line, against)  # ValueError naming the line's versions
    if against == this_version:
        msg = f"--against {against} is the version being evaluated: name another version"
        raise ValueError(msg)
    return this_version


def _compare(
    home: Path, args: argparse.Namespace, options: Any, report: Report, this_version: str
) -> Comparison:
    from inspect_app.lines import read_card, version_dir
    from inspect_app.teach import evaluate_line

    other = evaluate_line(home, args.line, Path(args.data), replace(options, version=args.against))
    classes = {
        v: read_card(version_dir(home, args.line, v)).classes for v in (this_version, args.against)
    }
    return compare_versions(
        report, classes[this_version], other, classes[args.against], args.against
    )


def _print_comparison(c: Comparison, this_version: str) -> None:
    print(f"against {c.version}, on the {c.n_common} parts both scored:")
    print(f"  {'':<18} {this_version:>10} {c.version:>10}")
    for key in COMPARED:
        a, b = getattr(c.this, key), getattr(c.other, key)
        fmt = format_rate if key.endswith(("rate", "accuracy")) else format_metric
        print(f"  {key:<18} {fmt(a):>10} {fmt(b):>10}")
    differ = len(c.caught) + len(c.missed) + len(c.rejected) + len(c.passed)
    print(
        f"  {this_version} decides {differ} part(s) otherwise than {c.version}: catches "
        f"{len(c.caught)} defective part(s) it passes, misses {len(c.missed)} it catches, "
        f"rejects {len(c.rejected)} good part(s) it passes, passes {len(c.passed)} it rejects"
    )
    for name, ids in (("caught", c.caught), ("missed", c.missed)):
        if ids:
            more = f" (+{len(ids) - 10} more)" if len(ids) > 10 else ""
            print(f"    {name} by {this_version} alone: {', '.join(ids[:10])}{more}")


def write_parts_csv(path: Path, parts: list[PartResult], threshold: float) -> None:
    """`--parts-csv`: the parts in the order they were scored (`metrics.part_rows`)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=PARTS_CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(part_rows(parts, threshold))
