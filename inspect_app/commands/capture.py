"""`inspect-app capture`: a camera's parts written as a dataset folder, to label and teach from."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inspect_app.sources import CameraLine

HELP = "write a camera's parts (frames + vibration) as a dataset folder to label"
DESCRIPTION = """\
Teaching a line (adapt) and setting its threshold on more parts (calibrate) need labeled parts
in the dataset format (DESIGN §3). A line fed by a camera has no files to label: this command
takes --parts parts from the camera (an OpenCV index, RTSP/HTTP URL, GStreamer pipeline or video
file, as for serve), with the vibration paired to it when --vibration is given, and writes them
into OUT: images/<part>.png (lossless, the whole frame: a line's --roi is applied when the parts
are read), vibration/<part>.npy and a labels.csv row per part.

The label column is left empty for you to fill in (ok, or a defect class such as scratch), or
set for every part of the run with --label: capture known good parts with --label ok, then a
batch of known defective ones with --label dent into the same folder (runs append to its
labels.csv). adapt and evaluate refuse a part without a label, naming its row.

A camera streaming continuously gives many frames of each part: --every S keeps at most one
frame every S seconds. A frame the camera could not deliver is not written, and is counted;
so is a part the line could not inspect (a uniform frame: camera dark or covered; a flat
vibration window; a frame or window that repeats the part before it: a frozen feed).
Ctrl-C stops the capture with every part written so far complete.

Example:
  inspect-app capture --source 0 --out parts/cover-2 --parts 40 --label ok --every 2
  inspect-app capture --source rtsp://10.0.0.5/stream --out parts/cover-2 --parts 10 --label dent \\
      --every 2
  inspect-app adapt --line cover-2 --data parts/cover-2 --samples 50
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        required=True,
        help="camera index, RTSP/HTTP URL, GStreamer pipeline or video file",
    )
    parser.add_argument("--out", required=True, help="dataset folder to write (or append to)")
    parser.add_argument("--parts", type=int, default=50, help="parts to capture (default 50)")
    parser.add_argument(
        "--label",
        default=None,
        help="label every captured part (ok, or a defect class); default: left empty to fill in",
    )
    parser.add_argument(
        "--every",
        type=float,
        default=0.0,
        metavar="S",
        help="at most one part every S seconds (a camera streaming continuously); default 0",
    )
    parser.add_argument(
        "--vibration", default=None, help="vibration recording paired with the camera"
    )
    parser.add_argument(
        "--window-s",
        type=float,
        default=1.0,
        metavar="S",
        help="vibration seconds per part, with --vibration (default 1.0)",
    )
    parser.add_argument(
        "--sample-rate",
        type=float,
        default=None,
        metavar="HZ",
        help="the vibration's sample rate when its file does not say (.npy, .csv)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from inspect_app.capture import capture_parts, check_label, open_table

    if args.parts < 1 or args.every < 0 or args.window_s <= 0:
        print(
            "inspect-app capture: --parts must be positive, --every at least 0 and --window-s "
            f"positive (got {args.parts}, {args.every}, {args.window_s})",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    try:
        check_label(args.label)
        if Path(args.source).is_dir():
            msg = (
                f"{args.source} is a folder: its parts are files already (a dataset to label, or "
                "a hot folder); capture takes a camera or a video file"
            )
            raise ValueError(msg)
        open_table(out)  # refuse another dataset's table before the camera opens
        source = _open_camera(args)
    except (OSError, ValueError) as exc:
        print(f"inspect-app capture: {exc}", file=sys.stderr)
        return 1
    if source.live and args.every == 0:
        print(
            "note: every frame the camera delivers becomes a part; a camera streaming "
            "continuously (not triggered by the part) needs --every S, or the parts are many "
            "frames of the same few parts",
            file=sys.stderr,
        )
    from tqdm import tqdm

    bar = tqdm(total=args.parts, unit="part", desc="capture", disable=args.no_progress)
    try:
        result = capture_parts(
            source,
            out,
            args.parts,
            label=args.label,
            every_s=args.every,
            on_part=lambda n: bar.update(n - bar.n),
        )
    except KeyboardInterrupt:
        print(f"stopped: the parts captured so far are in {out}")
        return 130
    except (OSError, ValueError) as exc:
        print(f"inspect-app capture: {exc}", file=sys.stderr)
        return 1
    finally:
        bar.close()
        source.close()
    how = "appended to" if result.appended else "written to"
    print(f"{result.written} part(s) {how} {out / 'labels.csv'}")
    if result.skipped:
        part, why = result.skipped[0]
        print(
            f"{len(result.skipped)} part(s) not written (the camera could not deliver them, or "
            f"they could not be inspected: dark, flat or frozen; first: {part}: {why})",
            file=sys.stderr,
        )
    if result.written < args.parts:
        print(f"the source ended after {result.written} of {args.parts} part(s)")
    if args.label is None:
        print(f"next: fill in the label column of {out / 'labels.csv'} (ok or a defect class)")
    return 0 if result.written else 1


def _open_camera(args: argparse.Namespace) -> CameraLine:
    """The camera as `serve` opens it, without a line: whole 8-bit frames."""
    from inspect_app.sources import CameraLine, open_source

    source = open_source(
        args.source,
        args.vibration,
        window_s=args.window_s if args.vibration else None,
        sample_rate_hz=args.sample_rate,
    )
    if not isinstance(source, CameraLine):  # open_source refused folders above already
        msg = f"{args.source} is not a camera or a video file"
        raise ValueError(msg)
    return source
