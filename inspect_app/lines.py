"""Line models on disk: versioned folders under HOME/lines/<line>, one of them ACTIVE.

Layout (docs/internals.md, "The line model on disk"):

    HOME/lines/<line>/ACTIVE          the active version's folder name, replaced atomically
    HOME/lines/<line>/v1/ v2/ ...     versions, never modified once written
        line.json  weights.safetensors  adapter/ (peft, when used)  MODEL_CARD.md

A version is written into a hidden temporary folder beside the versions and renamed into place;
ACTIVE is switched last (write a temporary file, `os.replace`). A crash or a bad input at any
point leaves the previous active model untouched and no half-written `vN` folder.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspect_app.home import line_dir
from inspect_app.metrics import format_metric, format_rate

if TYPE_CHECKING:
    from models.line_model import LineModel

FORMAT = 1
ACTIVE = "ACTIVE"
CARD_FILE = "line.json"
WEIGHTS_FILE = "weights.safetensors"
ADAPTER_DIR = "adapter"
MODEL_CARD = "MODEL_CARD.md"
_VERSION = re.compile(r"^v(\d+)$")


@dataclass
class LineCard:
    """`line.json`: what a line model is, how its inputs are made, and how well it did."""

    line: str
    method: str
    classes: list[str]
    threshold: float
    modalities: list[str]
    image_size: int
    spectrum: dict[str, Any]
    backbone: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    created: str = ""
    format: int = FORMAT
    model: dict[str, Any] = field(default_factory=dict)  # LineModel construction settings
    adapt: dict[str, Any] = field(default_factory=dict)  # how it was taught (data, samples, seed)
    align: dict[str, Any] = field(default_factory=dict)  # pose alignment (inspect_app.align)
    # why `adapt --align auto` left the alignment off (None when it is on, or was not tried)
    align_refused: str | None = None
    # bits the line's 16-bit frames fill (10, 12, 14: Mono12 saved as 0..4095), every frame
    # read with them (sensors.camera.read_image); None: 8-bit frames, or 16-bit at full scale
    image_bits: int | None = None
    # the region of interest [x, y, w, h] (pixels of the camera's frame) every frame is cropped
    # to before anything else sees it (sensors.camera.Roi); None: the whole frame
    roi: list[int] | None = None
    # the threshold set on more labeled parts than the adapt sample (`inspect-app calibrate`):
    # the data, the version it came from, the rates at the new threshold and its split-half
    # check; {} when the threshold is the one `adapt` set
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str, source: str = "line.json") -> LineCard:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"{source}: not valid JSON ({exc})"
            raise ValueError(msg) from exc
        if raw.get("format") != FORMAT:
            msg = f"{source}: line model format {raw.get('format')!r} is not {FORMAT}"
            raise ValueError(msg)
        known = set(cls.__dataclass_fields__)
        missing = {"line", "method", "classes", "threshold", "modalities"} - set(raw)
        if missing:
            msg = f"{source}: missing fields {sorted(missing)}"
            raise ValueError(msg)
        return cls(**{k: v for k, v in raw.items() if k in known})

    def spectrum_config(self) -> Any:
        """The `sensors.spectrum.SpectrumConfig` the line was taught with."""
        from sensors.spectrum import SpectrumConfig

        return SpectrumConfig.from_dict(dict(self.spectrum))


def line_window_s(asked: float | None, card: Any, watch: bool = False) -> float | None:
    """The vibration window a line's recordings are cut into: the one asked for (--window-s of
    evaluate, calibrate, serve or the console), else the one the line was taught on (`adapt
    --window-s`), none for a hot folder, whose files are each one part."""
    if asked is not None or watch:
        return asked
    taught = getattr(card, "adapt", {}).get("window_s")
    return float(taught) if taught else None


def versions(home: Path, line: str) -> list[str]:
    """The line's version folders, oldest first (`v1`, `v2`, ...)."""
    root = line_dir(home, line)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in root.iterdir() if (m := _VERSION.match(p.name))]
    return [name for _, name in sorted(found)]


def active_version(home: Path, line: str) -> str:
    """The name of the line's active version; ValueError naming the line when there is none."""
    root = line_dir(home, line)
    marker = root / ACTIVE
    if not marker.is_file():
        have = ", ".join(list_lines(home)) or "none"
        msg = (
            f"line {line!r} has no active model under {root.parent} (lines there: {have}); "
            f"teach it first: inspect-app adapt --line {line} --data DIR"
        )
        raise ValueError(msg)
    name = marker.read_text(encoding="utf-8").strip()
    if not _VERSION.match(name) or not (root / name).is_dir():
        msg = f"{marker} names version {name!r}, which is not a version folder of line {line!r}"
        raise ValueError(msg)
    return name


def current_active_version(home: Path, line: str) -> str | None:
    """The line's active version on disk now, for a process already running one (serve's
    /healthz and reload, the console): None when it cannot be read, so the running model
    stays."""
    try:
        return active_version(home, line)
    except (OSError, ValueError):
        return None


def version_dir(home: Path, line: str, version: str | None = None) -> Path:
    """The folder of `version` (default: the active one)."""
    name = version or active_version(home, line)
    path = line_dir(home, line) / name
    if not _VERSION.match(name) or not path.is_dir():
        msg = f"line {line!r} has no version {name!r} (versions: {versions(home, line)})"
        raise ValueError(msg)
    return path


def list_lines(home: Path) -> list[str]:
    """Lines under HOME that have an active model."""
    root = home / "lines"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / ACTIVE).is_file())


def read_card(folder: Path) -> LineCard:
    """`line.json` of a version folder."""
    path = folder / CARD_FILE
    if not path.is_file():
        msg = f"{folder} is not a line model version: {CARD_FILE} is missing"
        raise ValueError(msg)
    return LineCard.from_json(path.read_text(encoding="utf-8"), source=str(path))


def write_version(
    home: Path,
    line: str,
    card: LineCard,
    write_files: Callable[[Path], None],
    activate: bool = True,
) -> Path:
    """Write a new version of `line` and (by default) make it active; returns its folder.

    `write_files(tmp)` writes the weights (and adapter) into the temporary folder; this function
    fills in `version` and `created`, writes `line.json` and `MODEL_CARD.md`, renames the folder
    into place and then switches ACTIVE. Any exception leaves nothing behind.
    """
    root = line_dir(home, line)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        write_files(tmp)
        card.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        final = _rename_into_place(root, tmp, card)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if activate:
        set_active(home, line, final.name)
    return final


def _rename_into_place(root: Path, tmp: Path, card: LineCard) -> Path:
    for _ in range(100):
        existing = [int(m.group(1)) for p in root.iterdir() if (m := _VERSION.match(p.name))]
        name = f"v{max(existing, default=0) + 1}"
        card.version = name
        (tmp / CARD_FILE).write_text(card.to_json() + "\n", encoding="utf-8")
        (tmp / MODEL_CARD).write_text(model_card(card), encoding="utf-8")
        target = root / name
        try:
            os.rename(tmp, target)  # fails if another writer took the name meanwhile
        except OSError:
            if target.exists():
                continue
            raise
        return target
    msg = f"could not find a free version name under {root}"
    raise RuntimeError(msg)


def set_active(home: Path, line: str, version: str) -> None:
    """Point ACTIVE at `version`, atomically (a reader sees the old or the new name, never half)."""
    root = line_dir(home, line)
    if not _VERSION.match(version) or not (root / version / CARD_FILE).is_file():
        msg = f"line {line!r} has no complete version {version!r}"
        raise ValueError(msg)
    fd, tmp_name = tempfile.mkstemp(prefix=".active-", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(version + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, root / ACTIVE)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


# frames longer than this many times their width are noted: the line squeezes them square
ELONGATED_FRAME = 2.0
# a share of the frame staying put while the registered good parts move (a fixture, the belt)
# above which adapt advises cropping to the part: the generator's frames show 0.00 %, a part
# seen through a fixed window of plain plate 4.7-15 % (inspect_app.align.camera_fixed_mask)
CAMERA_FIXED_NOTE = 0.01


def input_fit_notes(card: LineCard) -> list[str]:
    """How the line's inputs were fitted to its sensors, in words (`adapt` prints them, the
    model card lists them): the region of interest; frames much longer than wide; frames of
    fewer than 16 bits in 16-bit files; spectra fitted to a sample rate below 10 kHz or to
    windows under 0.2 s; a registered line whose camera sees fixed surroundings."""
    notes = []
    if card.roi:
        roi = card.roi
        notes.append(
            f"every frame is cropped to the region of interest: {roi[2]}x{roi[3]} px at "
            f"x {roi[0]}, y {roi[1]}; a frame it does not fit in is FAULT"
        )
    frame = card.adapt.get("frame_px")
    if frame and max(frame) > ELONGATED_FRAME * min(frame):
        w, h = frame
        ratio = max(w, h) / min(w, h)
        notes.append(
            f"frames are {w}x{h} px ({ratio:.1f} to 1): the line sees each at "
            f"{card.image_size}x{card.image_size} px, {ratio:.1f} times coarser along the "
            f"{'width' if w > h else 'height'} than across it, and a small defect along "
            "the part can be lost; crop to the part (--roi), or teach a part this long in "
            "sections, one line per --roi"
        )
    fixed = float((card.align or {}).get("camera_fixed_share", 0.0))
    if fixed >= CAMERA_FIXED_NOTE:
        region = enclosed_roi(card)
        crop = (
            f"--roi {','.join(map(str, region))}, the region it closes in"
            if region
            else "--roi X,Y,W,H; the console's Pick region"
        )
        notes.append(
            f"{fixed:.0%} of the frame stays where the camera holds it while the good parts "
            "move (a fixture, the belt or a reflection around the part): registered with the "
            "part it moves instead, and good parts differ from their template along it; crop "
            f"the frames to the part ({crop}) if the false-reject rate is high"
        )
    if card.image_bits:
        notes.append(
            f"frames hold {card.image_bits}-bit samples in 16-bit files: every frame is read "
            f"as 0..{(1 << card.image_bits) - 1}, anything brighter saturates"
        )
    if card.adapt.get("spectrum_fitted_to_hz"):
        notes.append(
            f"vibration sampled at {card.adapt['spectrum_fitted_to_hz'] / 1000:g} kHz: "
            f"{card.spectrum_config().describe()}; a part sampled slower is FAULT"
        )
    moved_why = "moved to {}, where the good parts' machine rings"
    if card.adapt.get("envelope_band_moved_by") == "labeled parts":
        moved_why = (
            "moved to {}, where the machine rings nearly as much as in 2-5 kHz and the "
            "labeled defective parts' vibration stands out"
        )
    for key, why in (
        ("envelope_band_moved_hz", moved_why),
        ("envelope_band_given_hz", "set to {} (--envelope-band)"),
    ):
        if card.adapt.get(key):
            lo, hi = card.adapt[key]
            notes.append(
                f"envelope band {why.format(f'{lo / 1000:g}-{hi / 1000:g} kHz')} (a bearing's "
                "impacts show in the envelope of the band they ring); a part sampled below "
                f"{card.spectrum_config().min_sample_rate_hz() / 1000:g} kHz is FAULT"
            )
    if card.adapt.get("spectrum_fitted_to_window_s"):
        notes.append(
            f"vibration windows of {card.adapt['spectrum_fitted_to_window_s']:g} s: "
            f"{card.spectrum_config().describe_resolution()}; a part with a shorter window "
            "is FAULT"
        )
    return notes


def enclosed_roi(card: LineCard) -> list[int] | None:
    """The region of interest [x, y, w, h] (pixels of the camera's frame) that the line's
    camera-fixed surroundings close in (`inspect_app.align.enclosed_region`, saved in the
    reference's pixels), or None: mapped through the adapt frames' size and the line's own
    region."""
    box, size = card.align.get("camera_fixed_encloses"), card.align.get("size")
    frame = card.adapt.get("frame_px")
    if not box or not size or not frame:
        return None
    sx, sy = frame[0] / size, frame[1] / size
    x0, y0 = math.floor(box[0] * sx), math.floor(box[1] * sy)
    x1, y1 = math.ceil((box[0] + box[2]) * sx), math.ceil((box[1] + box[3]) * sy)
    dx, dy = (card.roi[0], card.roi[1]) if card.roi else (0, 0)
    return [x0 + dx, y0 + dy, min(x1, frame[0]) - x0, min(y1, frame[1]) - y0]


def _defect_map_heat(card: LineCard) -> bool:
    """True when the line's heat-map is the backbone's defect map (taught no good part with an
    image): the line model's own rule, `LineModelSettings.heatmap_source`."""
    if not card.model:
        return False
    from models.line_model import LineModelSettings

    return LineModelSettings.from_dict(card.model).heatmap_source() == "defect_map"


def model_card(card: LineCard) -> str:
    """A short human-readable card: what the model is, what it was taught on, how well it did."""
    m = card.metrics
    lines = [
        f"# Line model `{card.line}` {card.version}",
        "",
        f"- created: {card.created}",
        f"- method: {card.method} (backbone `{card.backbone.get('size')}`, frozen, "
        f"sha256 {str(card.backbone.get('sha256', ''))[:12]})",
        f"- modalities: {', '.join(card.modalities)}",
        f"- defect classes it can name: {', '.join(card.classes) or 'none'}",
        f"- threshold on defect_score: {card.threshold:.4f} (FAIL when score >= threshold)",
    ]
    if card.align:
        lines.append(
            f"- pose alignment: {card.align.get('method')} onto a reference part (good adapt "
            f"parts register with median correlation {card.align.get('median_correlation')}"
            f"{'; in any orientation, every turn tried' if card.align.get('any_turn') else ''}); "
            f"frames taken at {card.image_size} px, compared with the good parts' pixel "
            "template at that size"
        )
    elif card.align_refused:
        lines.append(f"- pose alignment off: {card.align_refused}")
    lines += [f"- {note}" for note in input_fit_notes(card)]
    if card.model.get("anomaly_sources") is not None:
        lines.append(
            f"- anomaly sources: {', '.join(card.model['anomaly_sources']) or 'none'}; fusion "
            f"{card.model.get('fusion', 'noisy_or')}"
        )
    if _defect_map_heat(card):
        lines.append(
            "- heat-map: the backbone's pretrained defect map (taught no good part with an "
            "image: it shows where a part looks most like a defect)"
        )
    if card.adapt:
        # lines taught before `threshold_rule` was recorded were all set for a miss rate
        rule = card.adapt.get("threshold_rule") or (
            f"miss rate {card.adapt.get('target_miss_rate')}"
        )
        lines.append(
            f"- taught from {card.adapt.get('samples')} parts of {card.adapt.get('data')} "
            f"(seed {card.adapt.get('seed')}, threshold set for a {rule})"
        )
    if m:
        lines += [
            "",
            "## Validation (cross-validated, out-of-fold, on the adapt parts)",
            "",
            *(
                [
                    f"At the threshold adapt set ({m.get('threshold', float('nan')):.4f}); the "
                    "line now runs the calibrated one (below).",
                    "",
                ]
                if card.calibration
                else []
            ),
            "| miss rate | at most (95 %) | false-reject rate | at most (95 %) | AUROC "
            "| class accuracy | n | n defective |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            _table_row(m, (*_RATES, "class_accuracy", "n", "n_defective")),
            "",
            "These come from few parts: a miss rate of 0 on 25 defective parts means fewer than "
            "about 1 in 9 missed (the 95 % bound beside it), not none. Check with "
            "`inspect-app evaluate` on more labeled parts before relying on it; "
            "`inspect-app calibrate` sets the threshold on them."
            if m.get("n_defective")
            else "Taught from good parts only: how many defects pass is unknown. Every defect is "
            "left to the anomaly score; measure the miss rate with `inspect-app evaluate` on "
            "labeled defective parts before relying on it.",
        ]
        lines += _evidence_section(m)
    lines += _calibration_section(card.calibration)
    lines += [
        "",
        "Defects of a kind never in the adapt parts are caught by the anomaly score (distance to "
        "the good parts' features) but cannot be named.",
        "",
    ]
    return "\n".join(lines)


_RATES = ("miss_rate", "miss_rate_upper_95", "false_reject_rate", "false_reject_rate_upper_95",
          "auroc")  # fmt: skip


def _table_row(metrics: dict[str, Any], keys: tuple[str, ...]) -> str:
    """One markdown table row of the model card: the metrics under `keys`, in order."""
    return "| " + " | ".join(format_metric(metrics.get(key)) for key in keys) + " |"


def _calibration_section(c: dict[str, Any]) -> list[str]:
    """The model card's account of `inspect-app calibrate` ([] when the threshold is adapt's)."""
    if not c:
        return []
    held = c.get("held_out") or {}
    out = [
        "",
        f"## Threshold set on {c.get('n')} labeled parts (`inspect-app calibrate`)",
        "",
        f"From {c.get('from_version')} (threshold {format_metric(c.get('threshold_before'))}), "
        f"on {c.get('data')}: {c.get('n_defective')} defective parts, threshold set for a "
        f"{c.get('rule')}.",
        "",
        "| miss rate | at most (95 %) | false-reject rate | at most (95 %) | AUROC |",
        "| --- | --- | --- | --- | --- |",
        _table_row(c, _RATES),
        "",
        "These are measured on the parts that set the threshold, so they flatter it a little.",
    ]
    log = c.get("log")
    if log:
        out.append(
            f"The scores the line logged, labeled by {log.get('operator')} operator actions and "
            f"{log.get('replayed')} replayed labels; {log.get('unreviewed_fail')} FAIL parts no "
            f"one reviewed counted as defective, {log.get('unreviewed_pass')} PASS parts no one "
            "corrected as good (a defect that passed unnoticed would flatter the miss rate)."
        )
    if held:
        out.append(
            f"Set on one half of them and measured on the other ({held.get('splits')} random "
            f"halvings): miss rate {format_rate(held.get('miss_rate'))} (worst half "
            f"{format_rate(held.get('miss_rate_max'))}), false-reject rate "
            f"{format_rate(held.get('false_reject_rate'))} (worst half "
            f"{format_rate(held.get('false_reject_rate_max'))})."
        )
    return out


def _evidence_section(m: dict[str, Any]) -> list[str]:
    """The model card's table of the weakest defective adapt parts (teach.threshold_evidence)."""
    weakest = m.get("weakest_defects") or []
    if not weakest:
        return []
    tradeoff = {row["missed"]: row for row in m.get("miss_tradeoff") or []}
    out = [
        "",
        "## What holds the threshold down",
        "",
        "The weakest defective adapt parts (out-of-fold), and the false-reject rate if the "
        "threshold let them pass (`--target-miss-rate` gives that threshold):",
        "",
        "| part | label | defect score | good parts scoring as high | strongest source "
        "(good-part spreads) | false-reject if it and weaker pass | --target-miss-rate |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, w in enumerate(weakest, start=1):
        row = tradeoff.get(k)
        strongest = (
            f"{w['strongest_source']} ({w['strongest_spreads']:.1f})"
            if "strongest_source" in w
            else "-"
        )
        out.append(
            f"| {w['part_id']} | {w['label']} | {w['defect_score']:.4f} "
            f"| {format_rate(w['good_at_or_above'])} | {strongest} "
            f"| {format_rate(row['false_reject_rate']) if row else '-'} "
            f"| {format(row['target_miss_rate'], '.4g') if row else '-'} |"
        )
    return out


def load_line_model(
    home: Path, line: str, version: str | None = None
) -> tuple[LineModel, LineCard, Path]:
    """The line's model (eval mode, on CPU), its card and its folder."""
    from models.line_model import LineModel, load_backbone

    folder = version_dir(home, line, version)
    card = read_card(folder)
    spec = card.model.get("backbone", card.backbone)
    backbone = load_backbone(spec)
    expected = card.backbone.get("sha256")
    if expected and _weights_hash(backbone) != expected:
        backbone = _earlier_checkpoint(spec, str(expected))
        if backbone is None:
            msg = (
                f"line {line!r} {folder.name} was taught on backbone {str(expected)[:12]}, but "
                f"no installed '{card.backbone.get('size')}' checkpoint has those weights: teach "
                f"the line again (inspect-app adapt --line {line} ...)"
            )
            raise ValueError(msg)
    from safetensors import SafetensorError

    try:
        model = LineModel.load(folder, card.model, backbone=backbone)
    except (OSError, KeyError, RuntimeError, SafetensorError) as exc:  # missing, cut, foreign
        msg = (
            f"line {line!r} {folder.name}: its model in {folder} cannot be loaded "
            f"({type(exc).__name__}: {exc}); roll back with `inspect-app lines --line {line} "
            "--activate vN`, or teach the line again"
        )
        raise ValueError(msg) from exc
    model.eval()
    return model, card, folder


def _earlier_checkpoint(spec: dict[str, Any], expected: str) -> Any:
    """The shipped checkpoint whose weights hash to `expected` (a line taught before the
    current checkpoint was shipped keeps the one it was taught on), or None."""
    from models.backbone import load_pretrained, shipped_checkpoints

    if not spec.get("pretrained", True):
        return None
    for name in shipped_checkpoints(str(spec.get("size", "tiny")))[1:]:
        backbone = load_pretrained(name)
        if _weights_hash(backbone) == expected:
            return backbone
    return None


def _weights_hash(backbone: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(backbone.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()
