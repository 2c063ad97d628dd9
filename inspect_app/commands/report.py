"""`inspect-app report`: CSV, HTML or PDF defect reports from the defect log."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from inspect_app.home import default_db_url, no_log_at, resolve_home, sqlite_file

HELP = "defect reports (CSV, HTML, PDF): yield, Pareto by class, trend, overrides, worst parts"
DESCRIPTION = """\
Write a defect report for the quality manager from the defect log.

  csv   every inspection in range (verdict, class, scores, model version, operator action)
        in FILE, and every defect in FILE's stem + _defects.csv beside it
  html  one self-contained file: totals and yield, Pareto of fails by class, hourly fail-rate
        trend, per line and per model version, operator overrides, the worst parts with their
        heat-map snapshots
  pdf   the same content as the HTML report, A4

Counts follow the label after operator overrides (the machine's verdicts are shown beside).
Times are shown in the plant's time zone (--tz, default the machine's zone), stated on the
report. --since/--until take 2026-03-02, 2026-03-02T06:00 (plant time), an ISO time with an
offset, or 24h / 7d meaning that long before now. --until is exclusive.
An unknown line or a range without inspections is an error (exit 1) and writes no file.

examples:
  inspect-app report --format html --out shift.html --since 8h
  inspect-app report --format pdf --out week.pdf --line press-1 --since 2026-03-02 \\
      --until 2026-03-09 --tz Europe/Berlin
  inspect-app report --db postgresql+psycopg://qa@db/plant --format csv --out march.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help="defect log URL (default: HOME/inspect.db)")
    parser.add_argument("--format", required=True, choices=["csv", "html", "pdf"])
    parser.add_argument("--out", required=True, metavar="FILE", type=Path, help="report file")
    parser.add_argument("--line", metavar="L", help="only this line (default: all lines)")
    parser.add_argument("--since", metavar="T", help="from this time (inclusive)")
    parser.add_argument("--until", metavar="T", help="up to this time (exclusive)")
    parser.add_argument(
        "--tz", metavar="ZONE", help="plant time zone, IANA name (e.g. Europe/Berlin)"
    )


def _fail(message: str, code: int) -> int:
    print(f"inspect-app report: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from inspect_app.report import EmptyReport, ReportQuery, parse_window, plant_zone, write_report
    from inspect_app.store import DefectStore, StoreError

    home = resolve_home(args.home)
    url = args.db or default_db_url(home)
    try:
        db_path = sqlite_file(url)
    except ValueError as exc:
        return _fail(str(exc), 2)
    dirs = [home]
    if db_path is not None:
        if not db_path.exists():
            return _fail(no_log_at(db_path), 1)
        dirs.insert(0, db_path.parent)
    try:
        tz, tz_name = plant_zone(args.tz)
        since, until = parse_window(args.since, args.until, tz)
    except ValueError as exc:
        return _fail(str(exc), 2)
    query = ReportQuery(line=args.line, since=since, until=until, tz=tz, tz_name=tz_name)
    start = time.perf_counter()
    try:
        with DefectStore.open(url) as store:
            outcome = write_report(store, args.format, args.out, query, tuple(dirs))
    except EmptyReport as exc:
        return _fail(f"{exc}; no report written", 1)
    except ModuleNotFoundError as exc:
        hint = " (pip install 'inspect-app[pdf]')" if exc.name == "reportlab" else ""
        return _fail(f"{args.format} reports need the {exc.name} package{hint}", 1)
    except StoreError as exc:
        return _fail(str(exc), 1)
    seconds = time.perf_counter() - start
    files = ", ".join(str(f) for f in outcome.files)
    print(f"{args.format} report of {outcome.inspections} inspections: {files} ({seconds:.1f} s)")
    return 0
