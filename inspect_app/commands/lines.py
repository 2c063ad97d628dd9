"""`inspect-app lines`: the lines in HOME and their versions; switch a line's active version."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from inspect_app.defaults import ENGINE_FILE, PRECISIONS, exported_graph_name
from inspect_app.home import line_dir, resolve_home
from inspect_app.lines import LineCard, active_version, read_card, set_active, versions
from inspect_app.metrics import format_metric, format_rate

HELP = "list the taught lines and their versions; make a version active (or roll back)"
DESCRIPTION = """\
Every `adapt` writes a new version of a line (v1, v2, ...) under HOME/lines/L, and one version
is active: the one serve, the console, evaluate and export use unless told otherwise. This
command shows them and switches between them.

  inspect-app lines                          each line: its active version, when and how it
                                             was taught, its validation (out-of-fold) rates
                                             or those of a threshold set by `calibrate`
  inspect-app lines --line L                 every version of line L, the active one marked
  inspect-app lines --line L --activate v2   make v2 the active version (roll back to it, or
                                             go live with a version adapt saved with
                                             --no-activate)
  inspect-app lines --json                   the listing as JSON, for a plant's own tools

The switch is atomic: a process starting at that moment loads the old version or the new one,
never a mix. A running `serve` keeps the model it loaded until it is told to reload (SIGHUP,
`systemctl reload`) or restarted (its /healthz says `restart_to_use`); a running console says
the line has a new active version and loads it when the operator chooses the line again.
Nothing is deleted.

Example:
  inspect-app adapt --line press-3 --data parts/press-3-week2 --no-activate
  inspect-app evaluate --line press-3 --version v3 --against v2 --data parts/press-3-check
  inspect-app lines --line press-3 --activate v3
"""


def deployed_forms(folder: Path) -> list[str]:
    """What the version can run on besides torch: its exported graphs (`export`, by
    precision) and its TensorRT engine (built on the Jetson), as `serve` options."""
    found = [f"onnxruntime {p}" for p in PRECISIONS if (folder / exported_graph_name(p)).is_file()]
    if (folder / ENGINE_FILE).is_file():
        found.append("tensorrt")
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--line", help="one line: list its versions (default: every line)")
    parser.add_argument(
        "--activate",
        metavar="VERSION",
        help="make VERSION (v1, v2, ...) the line's active version; needs --line",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the listing as JSON (for a plant's own tools): per line its active version "
        "and every version with when and how it was taught and its validation rates",
    )


def run(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    if args.activate and not args.line:
        print("inspect-app lines: --activate needs --line L", file=sys.stderr)
        return 2
    try:
        if args.line is not None and not versions(home, args.line):
            print(f"inspect-app lines: {_no_such_line(home, args.line)}", file=sys.stderr)
            return 1
        if args.activate:
            return _activate(home, args.line, args.activate)
        if args.json:
            chosen = [args.line] if args.line else taught_lines(home)
            print(json.dumps([_as_json(home, line) for line in chosen], indent=2))
            return 0
        if args.line is None:
            return _every_line(home)
        return _one_line(home, args.line)
    except ValueError as exc:
        print(f"inspect-app lines: {exc}", file=sys.stderr)
        return 1


def taught_lines(home: Path) -> list[str]:
    """Lines under HOME with at least one version (active or not)."""
    root = home / "lines"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and versions(home, p.name))


def _no_such_line(home: Path, line: str) -> str:
    have = ", ".join(taught_lines(home)) or "none"
    return (
        f"no line {line!r} under {home / 'lines'} (lines there: {have}); teach it with "
        f"inspect-app adapt --line {line} --data DIR"
    )


def _active_or_none(home: Path, line: str) -> str | None:
    try:
        return active_version(home, line)
    except ValueError:
        return None


def _card(home: Path, line: str, version: str) -> LineCard | str:
    """The version's card, or why it cannot be read (the listing goes on)."""
    try:
        return read_card(line_dir(home, line) / version)
    except ValueError as exc:
        return f"unreadable: {exc}"


def _as_json(home: Path, line: str) -> dict[str, Any]:
    """One line for `--json`: its active version (None) and its versions, oldest first."""
    out: list[dict[str, Any]] = []
    for version in versions(home, line):
        card = _card(home, line, version)
        if isinstance(card, str):
            out.append({"version": version, "error": card})
            continue
        m = card.metrics
        out.append(
            {
                "version": version,
                "created": card.created,
                "method": card.method,
                "samples": card.adapt.get("samples"),
                "modalities": list(card.modalities),
                "classes": list(card.classes),
                "threshold": card.threshold,
                "backbone": card.backbone.get("size"),
                "validation": {k: m.get(k) for k in _VALIDATION},
                "calibration": _calibration_json(card),
                "runs_on": ["torch", *deployed_forms(line_dir(home, line) / version)],
            }
        )
    return {"line": line, "active": _active_or_none(home, line), "versions": out}


_VALIDATION = ("n", "n_defective", "miss_rate", "false_reject_rate", "auroc", "class_accuracy")


def _calibration_json(card: LineCard) -> dict[str, Any] | None:
    """`--json`'s account of a threshold set by `inspect-app calibrate` (None: adapt's)."""
    c = card.calibration
    if not c:
        return None
    keys = ("data", "from_version", "threshold_before", "rule", *_VALIDATION, "held_out", "log")
    return {k: c.get(k) for k in keys if k != "class_accuracy"}


def _rates(card: LineCard) -> str:
    m = card.metrics
    c = card.calibration
    if c:
        where = " of the defect log" if c.get("log") else ""
        return (
            f"threshold calibrated on {c.get('n')} parts{where} ({c.get('n_defective')} "
            "defective): "
            f"miss {format_rate(c.get('miss_rate'))}, false-reject "
            f"{format_rate(c.get('false_reject_rate'))}, AUROC {format_metric(c.get('auroc'))}"
        )
    return (
        f"miss {format_rate(m.get('miss_rate'))}, false-reject "
        f"{format_rate(m.get('false_reject_rate'))}, AUROC {format_metric(m.get('auroc'))}"
    )


def _summary(card: LineCard) -> str:
    parts = card.adapt.get("samples", card.metrics.get("n", "?"))
    classes = ", ".join(card.classes) or "none"
    c = card.calibration
    made = (
        f"calibrated {card.created or '?'} from {c.get('from_version')}, taught"
        if c
        else f"taught {card.created or '?'}"
    )
    return (
        f"{made} by {card.method} from {parts} parts "
        f"({' + '.join(card.modalities)}; classes: {classes}); "
        f"{'' if card.calibration else 'validation: '}{_rates(card)}; "
        f"threshold {card.threshold:.4f}"
    )


def _backbone(spec: dict[str, Any]) -> str:
    """The backbone a version was taught on, as `lines --line` shows it: lines taught on
    different shipped checkpoints (tiny, tinym, tiny16) run at different speeds."""
    size = spec.get("size", "?")
    how = "pretrained" if spec.get("pretrained") else "RANDOMLY INITIALISED"
    return f"{size} ({how}, sha256 {str(spec.get('sha256', '?'))[:12]})"


def _every_line(home: Path) -> int:
    lines = taught_lines(home)
    if not lines:
        print(f"no lines under {home / 'lines'}: teach one with inspect-app adapt")
        return 0
    for line in lines:
        all_versions = versions(home, line)
        active = _active_or_none(home, line)
        count = f"{len(all_versions)} version{'s' if len(all_versions) > 1 else ''}"
        if active is None:
            print(f"{line}: {count}, none active (inspect-app lines --line {line} --activate V)")
            continue
        card = _card(home, line, active)
        about = card if isinstance(card, str) else _summary(card)
        print(f"{line}: {active} active of {count}; {about}")
    return 0


def _one_line(home: Path, line: str) -> int:
    active = _active_or_none(home, line)
    all_versions = versions(home, line)
    state = f"{active} active" if active else "none active"
    print(f"line {line} ({line_dir(home, line)}): {len(all_versions)} version(s), {state}")
    for version in all_versions:
        card = _card(home, line, version)
        mark = "*" if version == active else " "
        about = card if isinstance(card, str) else _summary(card)
        print(f"{mark} {version}: {about}")
        if not isinstance(card, str):
            print(f"    backbone: {_backbone(card.backbone)}")
        forms = deployed_forms(line_dir(home, line) / version)
        exported = ", ".join(forms) if forms else "nothing exported yet (inspect-app export)"
        print(f"    runs on: torch; {exported}")
    return 0


def _activate(home: Path, line: str, version: str) -> int:
    before = _active_or_none(home, line)
    known = versions(home, line)
    if version not in known:
        msg = f"line {line!r} has no version {version!r} (versions: {', '.join(known)})"
        raise ValueError(msg)
    card = read_card(line_dir(home, line) / version)  # a version without its card is refused
    if before == version:
        print(f"line {line}: {version} is already the active version")
        return 0
    set_active(home, line, version)
    was = f"was {before}" if before else "none was active"
    print(f"line {line}: {version} is now the active version ({was}); {_summary(card)}")
    print(
        f"a running serve loads {version} on SIGHUP (systemctl reload) or a restart; a running "
        f"console loads it when the line is chosen again"
    )
    root = line_dir(home, line)
    if (
        before
        and (root / before / ENGINE_FILE).is_file()
        and not (root / version / ENGINE_FILE).is_file()
    ):
        print(
            f"note: {before} has a TensorRT engine ({ENGINE_FILE}) and {version} has none: a serve "
            f"with --backend tensorrt cannot load {version} (a reload keeps {before}) until it "
            "is exported and its engine built (deploy/jetson/README.md, step 6)"
        )
    return 0
