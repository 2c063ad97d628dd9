"""`inspect-app serve`: the headless inspection service."""

from __future__ import annotations

import argparse
import logging
import sys

from inspect_app.defaults import (
    BACKEND_CHOICES,
    HOT_FOLDER_SETTLE_S,
    PRECISIONS,
    precision_problem,
)
from inspect_app.home import default_db_url, resolve_home
from inspect_app.http_server import DEFAULT_HOST, DEFAULT_PORT
from inspect_app.snapshots import RetentionPolicy

HELP = "the headless inspection service (HTTP health and metrics on loopback)"
DESCRIPTION = f"""\
Inspect one line's parts and write every verdict to the defect log, until the source ends,
--max-parts is reached, or SIGTERM / SIGINT (then the parts in flight are finished and
committed, and it exits 0). SIGHUP (`systemctl reload`) loads the line's active version again
(after `inspect-app lines --activate` or `calibrate`): the old model inspects while the new
one loads, then the new one takes over between two parts with the source left open (a version
with another --roi reopens it). Restarting on a replayed
dataset continues after the parts already in the log. Parts that cannot be read (corrupt image,
truncated or NaN vibration) are logged as FAULT, never PASS, and so is a live camera's part
that finds the line full; a locked or full database holds the line and is retried. The reject
signal (--reject-command, --modbus, the alarm) goes out as each part is decided.

Drift: when the parts start scoring higher or lower than the model version's first 500 parts on
this line did (a lamp ageing, a camera knocked, a lens out of focus, another batch of
material), the journal, /healthz ("drift") and /metrics (inspect_drift) say so, before false
rejects (or misses) pile up.

SRC is a dataset folder (replayed as a line), a video file, a camera index, an RTSP URL or a
GStreamer pipeline (pair it with --vibration FILE), or with --watch a hot folder that the
camera and DAQ software write each part into: P123.png and, on a line with vibration,
P123.wav (or .npy/.csv/.mat with --sample-rate). A part is read once its files stop growing;
one whose other file has not come 10 s after the first is a FAULT. The part id is the name
stem; files are left where they are, and a restart skips the parts already in the log.

HTTP (read-only, GET): /healthz, /metrics (Prometheus), /api/inspections?limit=N, on
{DEFAULT_HOST}:{DEFAULT_PORT} unless --http says otherwise ('--http off' disables it).

Exit status: 0 done, 1 bad setup (line, source, model), 75 database unavailable.

example:
  inspect-app serve --line demo-line --source sample_data/demo-line/stream --max-parts 100
  inspect-app serve --line press-3 --source rtsp://10.0.0.5/stream --vibration /dev/shm/acc.wav \\
      --modbus 10.0.0.9:502:16 --http 0.0.0.0:8765
  inspect-app serve --line press-3 --source 0 --alarm-after 5 --alarm-command "stack-light red"
  inspect-app serve --line press-3 --source 0 --audit-every 200 --audit-command "divert check"
  inspect-app serve --line press-3 --source /data/press-3/incoming --watch
  inspect-app serve --line press-3 --source photos/ --watch --idle-exit 5   # a folder, once
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--line", required=True, help="the line model to run (HOME/lines/LINE)")
    parser.add_argument("--source", required=True, metavar="SRC", help="where parts come from")
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL of the defect log "
        "(default: SQLite HOME/inspect.db; postgresql+psycopg://… for a plant)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="torch",
        help="inference backend (default: torch; onnxruntime runs the line's ONNX graph)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="which exported graph --backend onnxruntime runs: fp32 (model.onnx, default) or "
        "the fp16 / int8 graph `inspect-app export --fp16 / --int8` wrote (check it first: "
        "inspect-app evaluate --backend onnxruntime --precision int8)",
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        default=f"{DEFAULT_HOST}:{DEFAULT_PORT}",
        help="where the read-only HTTP endpoints listen, or 'off' (default: %(default)s)",
    )
    parser.add_argument(
        "--max-parts", type=int, default=None, metavar="N", help="stop after N parts"
    )
    parser.add_argument(
        "--vibration",
        metavar="FILE",
        default=None,
        help="vibration recording paired with a camera/video source",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="SRC is a hot folder: inspect each part as its files arrive, until stopped",
    )
    parser.add_argument(
        "--sample-rate",
        type=float,
        default=None,
        metavar="HZ",
        help="sample rate of .npy/.csv/.mat vibration: a hot folder's files or --vibration "
        "FILE (WAV says its own)",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=None,
        metavar="S",
        help="a hot folder's file is read once its size has held this long (default "
        f"{HOT_FOLDER_SETTLE_S}; 0 when the writer renames finished files into the folder)",
    )
    parser.add_argument(
        "--recursive",
        action="store_true",
        help="with --watch: watch the folder's subfolders too, at any depth (a camera that "
        "writes each day into its own folder); a part's id is then its path below the folder "
        "without suffix, e.g. 2026-12-06/P0001",
    )
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="S",
        help="with --watch: stop after S seconds without a new part (inspect a folder of "
        "images once, then exit 0)",
    )
    parser.add_argument(
        "--window-s",
        type=float,
        default=None,
        metavar="S",
        help="cut long vibration recordings into windows of S seconds (default: the windows "
        "the line was taught on, adapt --window-s)",
    )
    parser.add_argument(
        "--reject-command",
        metavar="CMD",
        default=None,
        help="run CMD for every FAIL/FAULT part (INSPECT_PART_ID etc. in its env)",
    )
    parser.add_argument(
        "--modbus",
        metavar="HOST:PORT[:COIL[:UNIT]]",
        default=None,
        help="write the reject coil over Modbus TCP (True = reject)",
    )
    parser.add_argument(
        "--alarm-after",
        type=int,
        default=None,
        metavar="N",
        help="with --alarm-command: N parts in a row rejected (FAIL or FAULT) raise the alarm",
    )
    parser.add_argument(
        "--alarm-command",
        metavar="CMD",
        default=None,
        help="run CMD once when --alarm-after parts in a row are rejected (a stack light, a "
        "line stop; INSPECT_ALARM_RUN, INSPECT_ALARM_CLASS etc. in its env); a good part "
        "re-arms it",
    )
    parser.add_argument(
        "--audit-every",
        type=int,
        default=None,
        metavar="N",
        help="pick one passed part in N, at random (a fixed stride could follow a multi-cavity "
        "tool's cycle), for an operator's check: its snapshot is kept (the "
        "console shows it to confirm good or relabel), and --audit-command runs for it; the "
        "checked passes are what lets `calibrate --from-db` raise the threshold",
    )
    parser.add_argument(
        "--audit-command",
        metavar="CMD",
        default=None,
        help="with --audit-every: run CMD for each picked part (divert it to the check "
        "station; INSPECT_PART_ID, INSPECT_AUDIT=1 etc. in its env)",
    )
    parser.add_argument(
        "--drift-command",
        metavar="CMD",
        default=None,
        help="run CMD when the line's parts start scoring higher or lower than this model "
        "version's first 500 parts did (the light, the camera, the material or the process "
        "changed), and again when they are back (INSPECT_DRIFT=1 / 0, INSPECT_DRIFT_DIRECTION, "
        "INSPECT_DRIFT_MESSAGE etc. in its env); the journal, /healthz and /metrics say it "
        "either way",
    )
    parser.add_argument(
        "--no-drift", action="store_true", help="do not watch the parts' scores for drift"
    )
    parser.add_argument(
        "--no-snapshots", action="store_true", help="do not save images/vibration of rejected parts"
    )
    parser.add_argument(
        "--snapshot-max-parts",
        type=int,
        default=RetentionPolicy.max_parts,
        metavar="N",
        help="keep snapshots of at most N parts (default: %(default)s)",
    )
    parser.add_argument(
        "--snapshot-max-mb",
        type=float,
        default=RetentionPolicy.max_bytes / 2**20,
        metavar="MB",
        help="and of at most MB megabytes (default: %(default)g); each line has its own folder "
        "and limits (snapshots/<line>/)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        metavar="N",
        help="parts per model call (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads of the model (torch, onnxruntime; default: every core): several "
        "lines served on one machine share its cores, e.g. --threads 1 each on a 2-core one",
    )
    parser.add_argument(
        "--store-give-up-s",
        type=float,
        default=120.0,
        metavar="S",
        help="stop (exit 75) after the database is unavailable this long",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")


def run(args: argparse.Namespace) -> int:
    from inspect_app.service import ServeOptions, serve

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.watch and (
        args.idle_exit is not None or args.settle_s is not None or args.recursive
    ):
        print(
            "inspect-app serve: --idle-exit, --settle-s and --recursive need --watch",
            file=sys.stderr,
        )
        return 2
    if (args.alarm_after is None) != (args.alarm_command is None) or (
        args.alarm_after is not None and args.alarm_after < 2
    ):
        print(
            "inspect-app serve: --alarm-after N (2 or more) and --alarm-command CMD go together",
            file=sys.stderr,
        )
        return 2
    if args.audit_every is not None and args.no_snapshots:
        print(
            "inspect-app serve: --audit-every keeps the picked parts' snapshots, which is how "
            "the console finds them ('PASS to check'): drop --no-snapshots",
            file=sys.stderr,
        )
        return 2
    if args.audit_command is not None and args.audit_every is None:
        print(
            "inspect-app serve: --audit-command runs for the parts --audit-every N picks: "
            "give both",
            file=sys.stderr,
        )
        return 2
    for flag, count in (
        ("--audit-every", args.audit_every),
        ("--threads", args.threads),
        ("--batch-size", args.batch_size),
        ("--snapshot-max-parts", args.snapshot_max_parts),
        ("--snapshot-max-mb", args.snapshot_max_mb),
    ):
        if count is not None and count <= 0:
            print(f"inspect-app serve: {flag} must be positive, got {count}", file=sys.stderr)
            return 2
    if args.no_drift and args.drift_command:
        print(
            "inspect-app serve: --drift-command needs the drift watch (no --no-drift)",
            file=sys.stderr,
        )
        return 2
    problem = precision_problem(args.backend, args.precision)
    if problem is not None:
        print(f"inspect-app serve: {problem}", file=sys.stderr)
        return 2
    if args.threads is not None and args.backend == "tensorrt":
        print(
            "inspect-app serve: --threads is for the CPU backends (torch, onnxruntime); "
            "a TensorRT engine runs on the GPU",
            file=sys.stderr,
        )
        return 2
    home = resolve_home(args.home)
    options = ServeOptions(
        home=home,
        line=args.line,
        source=args.source,
        db_url=args.db or default_db_url(home),
        backend=args.backend,
        precision=args.precision,
        http=None if args.http.lower() in {"off", "none", ""} else args.http,
        max_parts=args.max_parts,
        vibration=args.vibration,
        window_s=args.window_s,
        watch=args.watch,
        sample_rate_hz=args.sample_rate,
        settle_s=HOT_FOLDER_SETTLE_S if args.settle_s is None else args.settle_s,
        idle_exit_s=args.idle_exit,
        recursive=args.recursive,
        reject_command=args.reject_command,
        modbus=args.modbus,
        alarm_command=args.alarm_command,
        alarm_after=args.alarm_after,
        audit_every=args.audit_every,
        audit_command=args.audit_command,
        drift=not args.no_drift,
        drift_command=args.drift_command,
        snapshots=not args.no_snapshots,
        snapshot_max_parts=args.snapshot_max_parts,
        snapshot_max_bytes=max(1, int(args.snapshot_max_mb * 2**20)),
        batch_size=args.batch_size,
        threads=args.threads,
        store_give_up_s=args.store_give_up_s,
    )
    home.mkdir(parents=True, exist_ok=True)
    return serve(options)
