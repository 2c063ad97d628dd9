"""Several lines served at once on one machine: one `inspect-app serve` process per line, as the
systemd template unit runs them (deploy/jetson/README.md, "Several lines on one Jetson").

Prints, in one run:
  * one line alone: parts/s of a `serve` process over the demo line's stream;
  * N lines at once (copies of the demo line under other names, each its own process, one
    SQLite defect log and one HOME): parts/s of each and together;
  * what the shared log holds afterwards: rows per line (each part once), the database's
    integrity check, and each line's snapshot folder.

parts/s is counted from the log itself: the parts a line committed between its first and its
last row's time (steady state, the model's loading left out).

    python -m benchmarks.lines_at_once                      # 2 lines, onnxruntime, 1 thread each
    python -m benchmarks.lines_at_once --lines 3 --backend torch
    python3 -m benchmarks.lines_at_once --backend tensorrt   # on a Jetson, the engine built
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from inspect_app.commands.demo import LINE, ensure_line_model, sample_line
from inspect_app.home import resolve_home
from inspect_app.lines import read_card, version_dir
from inspect_app.service import onnx_graph_for


def serve_command(home: Path, line: str, stream: Path, db: Path, args: argparse.Namespace) -> list:
    """The command the systemd unit runs, for one line."""
    return [
        sys.executable,
        "-m",
        "inspect_app",
        "serve",
        "--home",
        str(home),
        "--line",
        line,
        "--source",
        str(stream),
        "--db",
        f"sqlite:///{db}",
        "--backend",
        args.backend,
        *(["--threads", str(args.threads)] if args.backend != "tensorrt" else []),
        "--http",
        "off",
        *(["--max-parts", str(args.parts)] if args.parts else []),
    ]


def run_at_once(commands: list[list]) -> float:
    """Start every command together, wait for all; the wall time. A failure stops the run."""
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    for proc, command in zip(procs, commands, strict=True):
        _, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"serve for line {command[7]} exited {proc.returncode}:\n{err}")
    return time.perf_counter() - t0


def rates(db: Path) -> dict[str, tuple[int, float]]:
    """Each line's rows and steady parts/s, from the times of its first and last rows."""
    query = (
        "SELECT lines.name, COUNT(*), COUNT(DISTINCT inspections.part_id), "
        "MIN(inspections.timestamp), MAX(inspections.timestamp) FROM inspections "
        "JOIN lines ON lines.id = inspections.line_id GROUP BY lines.name ORDER BY lines.name"
    )
    out = {}
    with sqlite3.connect(db) as conn:
        for line, n, distinct, first, last in conn.execute(query):
            if n != distinct:
                sys.exit(f"line {line}: {n} rows for {distinct} parts (a part logged twice)")
            span = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
            out[line] = (n, (n - 1) / span if span > 0 else float("nan"))
    return out


def copy_line(home: Path, name: str) -> None:
    """Another line on the same HOME: the demo line's folder under another name."""
    target = home / "lines" / name
    if not target.exists():
        shutil.copytree(home / "lines" / LINE, target)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default=None, help="HOME with the demo line (taught if missing)")
    parser.add_argument("--lines", type=int, default=2, help="lines served at once (default 2)")
    parser.add_argument(
        "--backend",
        default="onnxruntime",
        choices=("torch", "onnxruntime", "tensorrt"),
        help="tensorrt: on a Jetson, the demo line's engine built (deploy/jetson/README.md)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="model threads per process (default: the CPUs shared out, at least 1)",
    )
    parser.add_argument("--parts", type=int, default=None, help="parts per line (default all)")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    args.threads = args.threads or max(1, cpus // args.lines)

    home = resolve_home(args.home)
    data = sample_line(home)
    ensure_line_model(home, data / "adapt", readapt=False)
    stream = data / "stream"
    names = [LINE] + [f"{LINE}-{k}" for k in range(2, args.lines + 1)]
    for name in names[1:]:
        copy_line(home, name)
    print(
        f"{args.lines} lines ({', '.join(names)}), backend {args.backend}, {args.threads} "
        f"thread(s) each, {cpus} CPUs, stream {stream} ({args.parts or 'all'} parts per line)"
    )
    with tempfile.TemporaryDirectory(prefix="lines-at-once-") as tmp:
        work = Path(tmp)
        # once alone (this also makes the line's ONNX graph, so no start-up below exports it)
        alone = work / "alone" / "inspect.db"
        alone.parent.mkdir()
        wall = run_at_once([serve_command(home, LINE, stream, alone, args)])
        n, rate = rates(alone)[LINE]
        print(f"one line alone: {n} parts, {rate:.1f} parts/s ({wall:.1f} s with start-up)")
        if args.backend == "onnxruntime":
            for name in names[1:]:  # each copy's graph, made before the timed run
                folder = version_dir(home, name)
                onnx_graph_for(home, name, folder, read_card(folder))

        shared = work / "shared" / "inspect.db"
        shared.parent.mkdir()
        wall = run_at_once([serve_command(home, name, stream, shared, args) for name in names])
        per_line = rates(shared)
        total = sum(rate for _, rate in per_line.values())
        for name, (n, rate) in per_line.items():
            folder = shared.parent / "snapshots" / name
            snaps = len({p.stem for p in folder.iterdir()}) if folder.is_dir() else 0
            print(f"  {name}: {n} parts logged once each, {rate:.1f} parts/s, {snaps} snapshots")
        with sqlite3.connect(shared) as conn:
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        print(
            f"{args.lines} lines at once: {total:.1f} parts/s together ({wall:.1f} s with "
            f"start-up); shared log integrity: {check}"
        )


if __name__ == "__main__":
    main()
