"""`inspect-app demo`: the main job on embedded defaults, start to finish."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from inspect_app.commands.adapt import READY_FALSE_REJECT_RATE, evidence_lines
from inspect_app.home import resolve_home
from inspect_app.metrics import format_rate

HELP = "the main job: sample line -> adapt if needed -> inspect the stream -> summary + HTML"
DESCRIPTION = """\
Runs the product end to end on the sample line (synthetic line 15: a cast-metal plate on a
rotating test stand, camera + vibration):

  1. the sample line: sample_data/demo-line from the source checkout, or generated into
     HOME/sample_data/demo-line by the project's synthetic generator;
  2. adapt: teaches line `demo-line` from its 60 labeled adapt parts, unless HOME already has it
     (on the --backbone asked for);
  3. serve: inspects the 300-part stream headless into SQLite at HOME/demo/inspect.db (started
     afresh on every demo run), with snapshots of rejected parts beside it;
  4. prints a summary (parts, fails by class, faults, parts/s, miss and false-reject rates
     against the stream's labels) and writes HOME/demo/summary.html and, through the report
     code, HOME/demo/report.html.

example:
  inspect-app demo
  inspect-app demo --home /tmp/inspect-home --backend onnxruntime --max-parts 100
  inspect-app demo --backbone tinym --backend onnxruntime     # the backbone faster on a CPU
"""

LINE = "demo-line"
SAMPLE_SEED = 15  # the demo line's seed (sample_data/README.md); reserved, never pretrained on


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="inference backend for the stream (default: %(default)s, the faster on a CPU; "
        "onnxruntime exports the line once, then runs the graph)",
    )
    parser.add_argument(
        "--max-parts",
        type=int,
        default=None,
        metavar="N",
        help="inspect only the first N parts of the stream",
    )
    parser.add_argument(
        "--readapt", action="store_true", help="teach the demo line again even if HOME has it"
    )
    parser.add_argument(
        "--backbone",
        metavar="NAME",
        default=None,
        help="teach the demo line on this shipped backbone (as `adapt --backbone`; e.g. tinym, "
        "faster on a CPU); taught again when HOME's demo line runs on another one. Default: "
        "tiny for a new demo line, HOME's as it is otherwise",
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        default=None,
        help="also serve /healthz, /metrics, /api/inspections while it runs",
    )


def sample_line(home: Path) -> Path:
    """sample_data/demo-line beside the package when run from a checkout; else generated."""
    checkout = Path(__file__).resolve().parents[2] / "sample_data" / "demo-line"
    if all((checkout / sub / "labels.csv").is_file() for sub in ("adapt", "stream")):
        return checkout
    generated = home / "sample_data" / "demo-line"
    if all((generated / sub / "labels.csv").is_file() for sub in ("adapt", "stream")):
        return generated
    from tqdm import tqdm

    from sensors.synthetic import WriteOptions, write_line

    options = WriteOptions(image_format="jpg", vibration_format="npy16")
    with tqdm(total=360, desc="generating the sample line", unit="part") as bar:
        for sub, parts, fraction, start, split in (
            ("adapt", 60, 0.4, 0, "train"),
            ("stream", 300, 0.15, 1000, "test"),
        ):
            write_line(
                generated / sub,
                SAMPLE_SEED,
                parts,
                fraction,
                start_index=start,
                split=split,
                image_size=224,
                duration_s=0.5,
                options=options,
                overwrite=True,
                progress=bar.update,
            )
    return generated


def ensure_line_model(
    home: Path, adapt_data: Path, readapt: bool, backbone: str | None = None
) -> None:
    """Teach the demo line from its adapt parts unless HOME already has an active model (on
    `backbone`, when one is named)."""
    from inspect_app.home import line_dir
    from inspect_app.lines import active_version, read_card

    if not readapt:
        try:
            version = active_version(home, LINE)
        except ValueError:
            pass
        else:
            try:
                taught_on = read_card(line_dir(home, LINE) / version).backbone.get("size")
            except ValueError:  # an unreadable card: serving it says what is wrong
                taught_on = None
            if backbone is None or backbone == taught_on:
                on = f", on {taught_on}" if taught_on else ""
                print(
                    f"demo: line {LINE} {version} is already taught{on} "
                    "(--readapt to teach it again)"
                )
                return
            print(f"demo: line {LINE} {version} was taught on {taught_on}, not {backbone}")
    from inspect_app.teach import TeachOptions, teach_line

    options = TeachOptions() if backbone is None else TeachOptions(backbone_size=backbone)
    print(f"demo: teaching line {LINE} on {options.backbone_size} from {adapt_data} …")
    result = teach_line(home, LINE, adapt_data, options)
    m = result.report.as_dict()
    print(
        f"demo: taught {result.folder.name} from {result.n_parts} parts in {result.seconds:.0f} s "
        f"(cross-validated miss rate {format_rate(m.get('miss_rate'))}, false-reject rate "
        f"{format_rate(m.get('false_reject_rate'))})"
    )
    frr = m.get("false_reject_rate")
    if frr is not None and frr > READY_FALSE_REJECT_RATE:
        # as `inspect-app adapt` says it: which defective parts hold the threshold down
        for line in evidence_lines(result.card.metrics):
            print(f"demo:{line[1:]}")


def fresh_demo_db(folder: Path) -> str:
    """HOME/demo/inspect.db, emptied so every demo run inspects the whole stream."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("inspect.db", "inspect.db-wal", "inspect.db-shm"):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / "snapshots", ignore_errors=True)
    return f"sqlite:///{folder / 'inspect.db'}"


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from inspect_app.pipeline import InspectedPart
    from inspect_app.service import InspectionService, ServeOptions
    from inspect_app.sources import DatasetReplay
    from inspect_app.store import StoreError
    from inspect_app.summary import RunTally, summarize, summary_lines, write_summary_html

    if args.backbone is not None:
        from inspect_app.teach import check_backbone_name

        try:
            check_backbone_name(args.backbone)
        except ValueError as exc:  # named with the ones there are, before any work
            print(f"inspect-app demo: {exc}", file=sys.stderr)
            return 2
    home = resolve_home(args.home)
    home.mkdir(parents=True, exist_ok=True)
    data = sample_line(home)
    ensure_line_model(home, data / "adapt", args.readapt, args.backbone)
    demo_dir = home / "demo"
    options = ServeOptions(
        home=home,
        line=LINE,
        source=str(data / "stream"),
        db_url=fresh_demo_db(demo_dir),
        backend=args.backend,
        http=args.http,
        max_parts=args.max_parts,
    )
    tally = RunTally()
    bar = tqdm(desc=f"inspecting ({args.backend})", unit="part")

    def committed(parts: list[InspectedPart]) -> None:
        tally.add(parts)
        bar.update(len(parts))

    try:
        service = InspectionService.build(options, on_committed=committed)
    except (ValueError, OSError, StoreError) as exc:
        bar.close()
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    if isinstance(service.pipeline.source, DatasetReplay):
        n = len(service.pipeline.source)
        bar.total = n if args.max_parts is None else min(n, args.max_parts)
    outcome = service.run()
    bar.close()
    if outcome.error:
        print(f"demo: stopped: {outcome.error}", file=sys.stderr)
        return 1
    pipeline = service.pipeline
    summary = summarize(tally, pipeline.stats.snapshot(), pipeline.config.batch_size)
    for text in summary_lines(summary, LINE):
        print(f"demo: {text}")
    report = write_full_report(options.db_url, demo_dir)
    page = write_summary_html(summary, LINE, demo_dir / "summary.html", report)
    print(f"demo: summary {page}" + (f", defect report {report}" if report else ""))
    for hint in next_steps(home, data, options.db_url):
        print(f"demo: {hint}")
    return 0


def next_steps(home: Path, data: Path, db_url: str) -> list[str]:
    """What to try after the demo, as commands on the same HOME (`db_url`: the run's log)."""
    at = f" --home {home}" if os.environ.get("INSPECT_APP_HOME") != str(home) else ""
    prog = _program()
    return [
        "next steps:",
        f"  {prog} console{at} --line {LINE} --source {data / 'stream'} --start",
        f"  {prog} lines{at} --line {LINE}",
        f"  {prog} calibrate{at} --line {LINE} --from-db --db {db_url} --dry-run",
        f"  {prog} adapt{at} --line YOUR-LINE --data YOUR-PARTS --samples 50",
        "  (the console is the operator's window; lines lists the line's versions; calibrate "
        "sets the threshold on the parts just logged; adapt teaches your own parts: "
        "labels.csv, MVTec AD or class folders)",
    ]


def _program() -> str:
    """`inspect-app` when it is on PATH, else the path it was run by (`make demo` runs
    .venv/bin/inspect-app without activating the environment)."""
    run_as = Path(sys.argv[0])
    if shutil.which("inspect-app") or run_as.name != "inspect-app":
        return "inspect-app"
    return str(run_as)


def write_full_report(db_url: str, folder: Path) -> Path | None:
    """The HTML defect report of the run through the report code (None if it cannot be made)."""
    try:
        from inspect_app.report import ReportQuery, write_report
    except ImportError:
        return None
    from inspect_app.store import DefectStore

    out = folder / "report.html"
    with DefectStore.open(db_url) as store:
        try:
            write_report(store, "html", out, ReportQuery(line=LINE), (folder / "snapshots",))
        except ValueError as exc:  # EmptyReport and friends: the summary still stands
            print(f"demo: no defect report: {exc}", file=sys.stderr)
            return None
    return out
