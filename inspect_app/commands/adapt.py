"""`inspect-app adapt`: teach a line from N labeled parts and save a new version of its model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspect_app.defaults import (
    ALIGN_MODES,
    DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE,
    DEFAULT_TARGET_MISS_RATE,
)
from inspect_app.home import resolve_home
from inspect_app.lines import current_active_version, input_fit_notes
from inspect_app.metrics import format_metric, format_rate, parts_to_show_rate
from sensors.errors import DataError

if TYPE_CHECKING:
    from inspect_app.from_db import FromDbResult

HELP = "teach a line from N labeled parts (prompt tuning of the frozen backbone)"
DESCRIPTION = """\
Teach line L from a labeled dataset folder (labels.csv, MVTec AD or class-per-folder; see
DESIGN §3). A stratified sample of N parts is drawn (every class present, at least 3 parts each);
the pretrained backbone stays frozen and only the line's prompt tokens and a small head are
learned (or LoRA weights, or a linear probe). The good parts' features become the line's
memory: a part unlike every good part is flagged even if its defect kind was never labeled.

Parts in a fixture are registered onto a reference part before the model sees them (pose
alignment, --align auto): the good parts then also give a pixel template, and a part is flagged
where it differs from the good parts at that place (a missing hole, a chipped edge, a stain).
`auto` keeps the alignment only when every good adapt part registers, and well; products
without a fixed layout (a web, a texture) are left as they are. Parts that arrive in any
orientation (a disc, a washer) are turned back: every turn is tried first when that registers
the good parts better. The template compares the frames at up to twice the backbone's size
(--template-size auto: 256 px when the camera gives that much), so a thin scratch is not
averaged away; the backbone itself sees them at 128 px.
A camera that sees more than the part (the conveyor, the fixture) gives the part more of those
pixels with --roi X,Y,W,H: every frame of the line is cropped to that rectangle first. When
something around the part stays put while the parts move (a fixture's window, a clamp), adapt
says so and names the region it closes in, to try as --roi.

The threshold is set by cross-validation on those N parts so that the out-of-fold miss rate
meets --target-miss-rate; the false-reject rate that costs is printed and saved. Taught from
good parts only (an MVTec AD folder's train/good), a line cannot measure its miss rate: the
threshold then rejects --target-false-reject-rate of the good parts out-of-fold, and every
defect is caught by the anomaly score alone. The model is written as a new version under
HOME/lines/L and made active only once it is complete; with --no-activate the line keeps
running its active version, and the new one waits to be checked (`evaluate --version`) and
switched to (`inspect-app lines --line L --activate vN`, which also rolls a line back).

Example:
  inspect-app adapt --line press-3 --data parts/press-3 --samples 50
  inspect-app adapt --line bearing-7 --data recordings/ --window-s 0.5 --method lora
  inspect-app adapt --line press-3 --from-db --source-data parts/press-3-stream
  inspect-app adapt --line cover-2 --data parts/cover-2 --roi 600,400,1200,1200
  inspect-app adapt --line press-3 --data parts/press-3-new --no-activate
"""


READY_FALSE_REJECT_RATE = 0.10
"""Above this validated false-reject rate the command warns that the model is not line-ready."""

FEW_GOOD_PARTS = 10
"""With fewer good parts in the sample, the command says the anomaly score's picture of a good
part and the false-reject rate rest on too few parts."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--line", required=True, help="line name (a folder under HOME/lines)")
    parser.add_argument("--data", help="labeled dataset folder (required unless --from-db)")
    parser.add_argument(
        "--samples",
        type=int,
        default=50,
        help="parts to learn from, stratified: every class in proportion, at least 3 each, good "
        "parts at least half where there are that many (default 50)",
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
        "--target-false-reject-rate",
        type=float,
        default=DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE,
        metavar="R",
        help="only when the sample holds no defective part (good parts only): the share of good "
        "parts the threshold may reject, out-of-fold; lower lets more defects pass (default "
        f"{DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE})",
    )
    parser.add_argument(
        "--window-s",
        type=float,
        default=None,
        metavar="S",
        help="cut long vibration recordings into S-second windows, each its own part "
        "(under 0.2 s, down to 0.02 s, the line's spectra are fitted to them: coarser "
        "frequency resolution)",
    )
    parser.add_argument(
        "--envelope-band",
        type=envelope_band_arg,
        default=None,
        metavar="LOW-HIGH",
        help="the band (Hz) whose envelope shows bearing faults: where the machine's bearing "
        "rings its structure, e.g. 6000-9000 (default 2000-5000, moved where the good parts "
        "ring when that is clearly elsewhere)",
    )
    parser.add_argument(
        "--align",
        choices=ALIGN_MODES,
        default="auto",
        help="register every frame onto the line's reference part and compare pixel by pixel "
        "with the good parts: auto (when every good part registers well; default), on (every "
        "good adapt part must register: a part that does not is a FAULT), off",
    )
    parser.add_argument(
        "--align-motion",
        choices=["rigid", "affine"],
        default="rigid",
        help="how a frame may move onto the reference: rigid (rotation and shift; default) or "
        "affine (also scale: parts at varying distance from the camera)",
    )
    parser.add_argument(
        "--template-size",
        type=template_size_arg,
        default="auto",
        metavar="PX|auto",
        help="the resolution at which registered frames are compared with the good parts, in "
        "pixels (a multiple of the backbone's 128): auto (default) takes 256 when the frames "
        "are at least that large, where fine scratches still show (about 1.6x the CPU time "
        "per part: 128 for a CPU line that must keep its rate); the backbone always sees 128 px",
    )
    parser.add_argument(
        "--no-activate",
        action="store_true",
        help="save the new version without making it the line's active one (serve, console "
        "and export keep the active version; switch with `inspect-app lines --activate`)",
    )
    parser.add_argument(
        "--roi",
        type=roi_arg,
        default=None,
        metavar="X,Y,W,H",
        help="region of interest, in pixels of the camera's frame: the top-left corner X,Y and "
        "the width and height that hold the part. Every frame of the line (adapt, evaluate, "
        "serve, console) is cropped to it; a frame it does not fit in is a FAULT. Default: the "
        "whole frame (--from-db: the line's own)",
    )
    parser.add_argument(
        "--backbone",
        default="tiny",
        metavar="NAME",
        help="the shipped backbone checkpoint to teach on: tiny (default, the current one); "
        "tinym (tiny's tokens merged 2x2 after its second block: about 25 %% faster on a CPU, "
        "level with tiny on the benchmark lines, the heat-map on the same grid) or tiny16 (16 px "
        "patches: 2.5x faster, a coarser heat-map where the parts do not register) for CPU-only "
        "lines; or an earlier checkpoint kept beside tiny (tiny-stage3: 96-unit experts, about "
        "30 %% slower). docs/backbone.md has the numbers. The line keeps the checkpoint it was "
        "taught on",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_from_db_arguments(parser)


def roi_arg(text: str) -> Any:
    """argparse type of `--roi`: a `sensors.camera.Roi` from X,Y,W,H."""
    from sensors.camera import Roi

    try:
        return Roi.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def envelope_band_arg(text: str) -> tuple[float, float]:
    """`--envelope-band LOW-HIGH` in Hz, e.g. 6000-9000."""
    try:
        lo, hi = (float(v) for v in text.split("-"))
    except ValueError:
        msg = f"expected LOW-HIGH in Hz, e.g. 6000-9000, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 0 < lo < hi:
        msg = f"expected LOW-HIGH in Hz with 0 < LOW < HIGH, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return lo, hi


def template_size_arg(text: str) -> int | str:
    """argparse type of `--template-size`: "auto" or a positive whole number of pixels."""
    if text == "auto":
        return text
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size <= 0:
        msg = f"expected auto or a whole number of pixels, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return size


# -- --from-db: learn from the parts operators corrected in the console (inspect_app.from_db) --


def defect_log_group(
    parser: argparse.ArgumentParser, purpose: str, from_db_help: str
) -> argparse._ArgumentGroup:
    """The "from the defect log" options adapt and calibrate share: --from-db and --db."""
    group = parser.add_argument_group("from the defect log", f"{purpose} instead of --data")
    group.add_argument("--from-db", action="store_true", help=from_db_help)
    group.add_argument("--db", metavar="URL", help="defect log URL (default: HOME/inspect.db)")
    return group


def add_from_db_arguments(parser: argparse.ArgumentParser) -> None:
    group = defect_log_group(
        parser,
        "teach from the parts operators corrected in `inspect-app console`",
        "use the line's operator-corrected parts",
    )
    group.add_argument(
        "--source-data",
        metavar="DIR",
        action="append",
        default=[],
        help="dataset folder the line replayed, or the hot folder it watched: corrected parts "
        "are read from it by part id (else only their snapshot's vibration is used); repeatable",
    )


def from_db_data(args: argparse.Namespace, home: Path) -> FromDbResult | None:
    """Write the corrected parts as a dataset folder; what was written (with the line's
    image bits and region of interest), or None on an error."""
    from inspect_app.from_db import dataset_for_adapt
    from inspect_app.home import default_db_url, missing_log

    db = args.db or default_db_url(home)
    problem = missing_log(db)
    if problem is not None:
        print(f"inspect-app adapt: --from-db: {problem}", file=sys.stderr)
        return None
    try:
        result = dataset_for_adapt(
            home,
            args.line,
            db,
            [Path(p) for p in args.source_data],
            show_progress=not args.no_progress,
        )
    except (DataError, ValueError) as exc:
        print(f"inspect-app adapt: --from-db: {exc}", file=sys.stderr)
        return None
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.label_counts.items()))
    print(f"from the defect log: {len(result.parts)} corrected parts ({counts}) in {result.folder}")
    for part_id, why in result.skipped:
        print(f"  skipped {part_id}: {why}", file=sys.stderr)
    return result


def run(args: argparse.Namespace) -> int:
    if args.samples < 1:
        print(f"inspect-app adapt: --samples must be positive, got {args.samples}", file=sys.stderr)
        return 2
    for flag, rate in (
        ("--target-miss-rate", args.target_miss_rate),
        ("--target-false-reject-rate", args.target_false_reject_rate),
    ):
        if not 0.0 <= rate < 1.0:
            print(f"inspect-app adapt: {flag} must be in [0, 1), got {rate}", file=sys.stderr)
            return 2
    from models.backbone import all_shipped_checkpoints

    shipped = all_shipped_checkpoints()
    if args.backbone != "tiny" and args.backbone not in shipped:
        print(
            f"inspect-app adapt: no shipped backbone checkpoint {args.backbone!r} "
            f"(shipped: {', '.join(shipped)})",
            file=sys.stderr,
        )
        return 2
    from inspect_app.teach import TeachOptions, teach_line  # torch loads here: checks first

    options = TeachOptions(
        samples=args.samples,
        backbone_size=args.backbone,
        method=args.method,
        seed=args.seed,
        target_miss_rate=args.target_miss_rate,
        target_false_reject_rate=args.target_false_reject_rate,
        window_s=args.window_s,
        envelope_band_hz=args.envelope_band,
        show_progress=not args.no_progress,
        align=args.align,
        align_motion="ecc-affine" if args.align_motion == "affine" else "ecc-euclidean",
        template_size=args.template_size,
        roi=args.roi,
        activate=not args.no_activate,
    )
    home = resolve_home(args.home)
    if (args.data is None) == (not args.from_db):
        print("inspect-app adapt: give either --data DIR or --from-db", file=sys.stderr)
        return 2
    data = args.data
    if args.from_db:
        found = from_db_data(args, home)
        if found is None:
            return 1
        data = found.folder
        options.samples = min(options.samples, len(found.parts))
        # the corrected frames were written 8-bit and whole: the line's bits and region stay
        options.image_bits = found.image_bits
        if options.roi is None:
            from sensors.camera import Roi

            options.roi = Roi.from_list(found.roi)
    try:
        result = teach_line(home, args.line, data, options)
    except (DataError, ValueError) as exc:
        print(f"inspect-app adapt: {exc}", file=sys.stderr)
        return 1
    m = result.report.as_dict()
    version = result.card.version
    if args.no_activate:
        active = current_active_version(home, args.line)
        running = f"still runs {active}" if active else "has no active version yet"
        print(
            f"line {args.line}: {version} saved in {result.folder}, not active (the line "
            f"{running}); check it with `inspect-app evaluate --line {args.line} --version "
            f"{version} --data DIR`, then `inspect-app lines --line {args.line} --activate "
            f"{version}`"
        )
    else:
        print(f"line {args.line}: {version} saved in {result.folder} and made active")
    print(
        f"taught from {result.n_parts} parts ({', '.join(result.card.modalities)}; "
        f"classes: {', '.join(result.card.classes) or 'none'}) with {args.method} "
        f"in {result.seconds:.0f} s"
    )
    align = result.card.align
    if align:
        turns = (
            "; they arrive in any orientation: every turn is tried" if align.get("any_turn") else ""
        )
        print(
            f"pose alignment on (good parts register with median correlation "
            f"{align['median_correlation']:.3f}{turns}); pixel template at "
            f"{result.card.image_size} px"
        )
    elif args.align == "auto" and "image" in result.card.modalities:
        why = result.card.align_refused or "the good parts do not register onto one reference"
        print(f"pose alignment off ({why}): parts are judged without the pixel template")
    for note in input_fit_notes(result.card):
        print(note)
    print(f"validation ({m['n']} parts, out-of-fold, {m['n_defective']} defective):")
    print(f"  threshold          {m['threshold']:.4f}")
    target = format_rate(args.target_miss_rate)
    good_only = m["n_defective"] == 0
    if good_only:
        print(
            "  miss rate          unknown: no defective part to measure it on (the threshold "
            f"rejects at most {format_rate(args.target_false_reject_rate)} of the good parts, "
            "--target-false-reject-rate)"
        )
    else:
        print(
            f"  miss rate          {format_rate(m['miss_rate'])} (target {target}; at most "
            f"{format_rate(m['miss_rate_upper_95'])} with 95 % confidence from "
            f"{m['n_defective']} defective parts)"
        )
    print(
        f"  false-reject rate  {format_rate(m['false_reject_rate'])} (at most "
        f"{format_rate(m['false_reject_rate_upper_95'])} with 95 % confidence)"
    )
    print(f"  AUROC              {format_metric(m['auroc'])}")
    print(f"  class accuracy     {format_rate(m['class_accuracy'])}")
    for note in m["notes"]:
        print(f"  note: {note}")
    if good_only:
        print(
            "  note: taught from good parts only: every defect is caught by the anomaly score "
            "(unlike every good part), none can be named, and how many pass is unknown. "
            "Measure it with `inspect-app evaluate` on labeled defective parts, or label some "
            "defective parts among the adapt data to set the threshold for a miss rate"
        )
    upper = m["miss_rate_upper_95"]
    if upper is not None and upper > args.target_miss_rate > 0:
        needed = parts_to_show_rate(args.target_miss_rate)
        print(
            f"  note: {m['n_defective']} defective parts cannot show a {target} miss rate "
            f"(95 % bound {format_rate(upper)}); that takes about {needed} defective parts "
            "without a miss: measure with `inspect-app evaluate` on more labeled parts, and set "
            "the threshold on them with `inspect-app calibrate`"
        )
    n_good = m["n"] - m["n_defective"] - m["n_fault"]
    if n_good == 0 and not good_only:
        print(
            "  note: no good parts in the sample: the line names defect classes, but has no "
            "anomaly score for a defect kind never labeled (it compares a part with good "
            "parts), and its heat-map is the backbone's pretrained defect map; label some good "
            "parts to have both from this line's own parts"
        )
    if 0 < n_good < FEW_GOOD_PARTS:
        print(
            f"  note: only {n_good} good parts in the sample: the anomaly score learns what a "
            "good part looks like from them, and the false-reject rate rests on them (95 % "
            f"bound {format_rate(m['false_reject_rate_upper_95'])}); label more good parts"
        )
    frr = m["false_reject_rate"]
    if frr is not None and frr > READY_FALSE_REJECT_RATE and not good_only:
        for line in evidence_lines(result.card.metrics):
            print(line)
        print(
            f"warning: to meet the {target} miss-rate target this model would reject "
            f"{format_rate(frr)} of good parts; it is not ready to run the line alone. "
            "Label more parts (especially defective ones), check the images are in focus and "
            "framed alike, or accept a higher --target-miss-rate.",
            file=sys.stderr,
        )
    return 0


def strongest_note(weak: dict[str, Any]) -> str:
    """`; strongest: spectrum template 0.9` - the source that scored a weak defective part
    highest, in good-part spreads (empty for cards written before it was recorded)."""
    if "strongest_source" not in weak:
        return ""
    name = str(weak["strongest_source"]).replace("_", " ")
    return f"; strongest: {name} {weak['strongest_spreads']:.1f}"


def evidence_lines(metrics: dict[str, Any]) -> list[str]:
    """The adapt report's lines on what holds the threshold down (`teach.threshold_evidence`):
    the weakest defective parts, and the false-reject rate each miss allowed would give."""
    weakest = metrics.get("weakest_defects") or []
    tradeoff = [row for row in metrics.get("miss_tradeoff") or [] if row["missed"] > 0]
    if not weakest:
        return []
    width = max(len(w["part_id"]) for w in weakest)
    label_width = max(len(w["label"]) for w in weakest)
    out = [
        "  the threshold sits under the weakest defective parts (out-of-fold score; good parts",
        "  scoring as high; the source that scored each highest, in good-part spreads): look at",
        "  them - below about 2 spreads no source sees a flaw there (its sensor cannot pick it",
        "  up), or the label is wrong",
    ]
    for w in weakest:
        out.append(
            f"    {w['part_id']:<{width}}  {w['label']:<{label_width}}  "
            f"{w['defect_score']:.4f}  {format_rate(w['good_at_or_above'])} of good parts"
            f"{strongest_note(w)}"
        )
    if tradeoff:
        n_defective = metrics.get("n_defective")
        out.append("  letting the weakest pass, on these parts (out-of-fold):")
        for row in tradeoff:
            out.append(
                f"    {row['missed']} of {n_defective} missed ({format_rate(row['miss_rate'])}): "
                f"false-reject {format_rate(row['false_reject_rate'])}  "
                f"(--target-miss-rate {row['target_miss_rate']:.4g})"
            )
    return out
