"""`inspect-app console`: the operator's window at the line (PyQt6, in the `ui` package)."""

from __future__ import annotations

import argparse
import logging
import sys

from inspect_app.defaults import BACKEND_CHOICES, PRECISIONS, precision_problem
from inspect_app.home import default_db_url, resolve_home

HELP = "the operator console: live part, verdict, spectrum, counters, defect log, overrides"
DESCRIPTION = """\
Open the line-side operator window. It runs the same inspection pipeline as `inspect-app serve`
in worker threads and shows the current part with its defect heat-map and box, the vibration
spectrum, a PASS / FAIL / FAULT banner readable from two metres, the shift's counters, the
source's health and the defect log (filter by class, verdict and time; click a row to see the
part's snapshot). The operator can start and stop the source, switch the line (the next part is
inspected with that line's model), override any part (confirm the defect, false alarm, relabel
the class — signed and saved to the log; `inspect-app adapt --line L --from-db` learns from
them) and export an HTML / PDF / CSV report.

Needs the `ui` extra (PyQt6, pyqtgraph) and a display (X11/Wayland; QT_QPA_PLATFORM=offscreen
for tests).

example:
  inspect-app console --line demo-line --source sample_data/demo-line/stream --start
  inspect-app console --line press-3 --source rtsp://10.0.0.5/stream --vibration acc.wav \\
      --db postgresql+psycopg://qa@db/plant --operator "A. Jones" --full-screen
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--line", metavar="L", help="line model to run (default: the only/first line in HOME)"
    )
    parser.add_argument(
        "--source",
        metavar="SRC",
        default="",
        help="dataset folder, video file, camera index, RTSP URL or GStreamer pipeline "
        "(can be typed in the window too)",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL of the defect log (default: SQLite HOME/inspect.db)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="torch",
        help="inference backend (default: %(default)s)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="which exported graph --backend onnxruntime runs (default fp32: model.onnx; fp16 / "
        "int8: the graph `inspect-app export --fp16 / --int8` wrote)",
    )
    parser.add_argument(
        "--vibration", metavar="FILE", help="vibration recording paired with a camera source"
    )
    parser.add_argument(
        "--window-s",
        type=float,
        metavar="S",
        help="cut long vibration recordings into S s parts (default: the windows the line was "
        "taught on, adapt --window-s)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="SRC is a hot folder the camera and DAQ software write parts into (as serve --watch)",
    )
    parser.add_argument(
        "--recursive",
        action="store_true",
        help="with --watch: watch the hot folder's subfolders too (as serve --recursive)",
    )
    parser.add_argument(
        "--sample-rate",
        type=float,
        metavar="HZ",
        help="sample rate of .npy/.csv/.mat vibration: a hot folder's files or --vibration FILE",
    )
    parser.add_argument(
        "--audit-every",
        type=int,
        metavar="N",
        help="pick one passed part in N at random for a check, as serve --audit-every: its "
        "snapshot is kept and the log shows it 'to check' until confirmed good or relabelled",
    )
    parser.add_argument("--operator", default="", help="pre-fill the operator name for overrides")
    parser.add_argument("--start", action="store_true", help="start the source at once")
    parser.add_argument("--full-screen", action="store_true", help="fill the screen")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")


def run(args: argparse.Namespace) -> int:
    from inspect_app.lines import list_lines

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.recursive and not args.watch:
        print("inspect-app console: --recursive needs --watch", file=sys.stderr)
        return 2
    problem = precision_problem(args.backend, args.precision)
    if problem is not None:
        print(f"inspect-app console: {problem}", file=sys.stderr)
        return 2
    if args.audit_every is not None and args.audit_every < 1:
        print(
            f"inspect-app console: --audit-every must be positive, got {args.audit_every}",
            file=sys.stderr,
        )
        return 2
    home = resolve_home(args.home)
    lines = list_lines(home)
    line = args.line or (lines[0] if lines else None)
    if line is None:
        print(
            f"inspect-app console: no line model in {home / 'lines'}; teach one first, e.g.\n"
            "  inspect-app adapt --line demo-line --data sample_data/demo-line/adapt",
            file=sys.stderr,
        )
        return 1
    try:
        from ui.app import ConsoleOptions, run_console
    except ImportError as exc:
        print(
            f"inspect-app console: the console needs PyQt6 and pyqtgraph ({exc}); "
            "install them with: pip install 'inspect-app[ui]'",
            file=sys.stderr,
        )
        return 1
    home.mkdir(parents=True, exist_ok=True)
    options = ConsoleOptions(
        home=home,
        line=line,
        lines=tuple(lines),
        db_url=args.db or default_db_url(home),
        source=args.source,
        backend=args.backend,
        precision=args.precision,
        vibration=args.vibration,
        window_s=args.window_s,
        watch=args.watch,
        recursive=args.recursive,
        sample_rate_hz=args.sample_rate,
        audit_every=args.audit_every,
        operator=args.operator,
        autostart=args.start,
        full_screen=args.full_screen,
    )
    return run_console(options)
