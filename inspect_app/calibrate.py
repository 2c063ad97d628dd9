"""Set a line's threshold on more labeled parts than it was taught from (`inspect-app calibrate`).

`adapt` sets the threshold on the out-of-fold scores of about 50 parts: 25 defective parts
cannot show a miss rate below about 11 % (95 % bound), whatever the target. Once the line has
seen more parts (a shift's parts labeled by the operators, a check set), their scores by the
line's own model set the threshold with the same rule (`metrics.line_threshold`), and the miss
and false-reject rates it gives are measured on hundreds of parts instead of guessed from 50.

Only the threshold changes: the new version is the old one's weights, adapter and exported
graphs (whose metadata gets the new threshold), written as a new version beside it
(`lines.write_version`), so a running line is switched (and rolled back) like any other
version. The rates at a threshold set on the same parts flatter it; `split_half_check` says what
the rule gives on parts it did not see, by setting it on one half and measuring on the other.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from inspect_app.defaults import DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE, DEFAULT_TARGET_MISS_RATE
from inspect_app.lines import (
    CARD_FILE,
    MODEL_CARD,
    LineCard,
    read_card,
    version_dir,
    versions,
    write_version,
)
from inspect_app.metrics import (
    PartResult,
    Report,
    compute_metrics,
    format_rate,
    line_threshold,
    threshold_for_miss_rate,
)
from inspect_app.store import DefectStore, InspectionRow
from sensors.sample import OK_LABEL

# the label of a logged FAIL that has no class name (a line taught without defect classes)
UNNAMED_DEFECT = "unnamed_defect"
# random halvings of the calibration parts behind `split_half_check`
SPLITS = 20
# the miss-rate targets whose cost `calibrate` shows beside the chosen one
TARGETS = (0.005, 0.01, 0.02, 0.05, 0.1)


@dataclass
class CalibrateOptions:
    """`inspect-app calibrate`'s options."""

    version: str | None = None  # the version whose threshold is set (default: the active one)
    target_miss_rate: float | None = None  # None: the one the line was taught for
    target_false_reject_rate: float = DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE
    window_s: float | None = None
    batch_size: int = 1
    include_adapt_parts: bool = False
    # --from-db: let the threshold rise although no passed part was checked (all taken as good)
    trust_passes: bool = False
    show_progress: bool = True
    backend: str = "torch"  # what scores the parts (`EvaluateOptions.backend`)
    threads: int | None = None
    precision: str = "fp32"  # which exported graph onnxruntime runs (`EvaluateOptions`)
    activate: bool = True
    dry_run: bool = False  # measure and print, write nothing
    seed: int = 0  # of the split-half check's halvings


@dataclass
class HeldOut:
    """The threshold rule set on one half of the parts and measured on the other (both ways,
    over `splits` random stratified halvings): what it gives on parts it did not see."""

    splits: int
    miss_rate: float | None  # None without defective parts
    false_reject_rate: float
    # the worst half seen: how far one draw of this many parts can be off
    miss_rate_max: float | None
    false_reject_rate_max: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Calibration:
    """What `calibrate_line` measured, and the version it wrote (None on a dry run)."""

    line: str
    from_version: str
    data: str
    rule: str  # "miss rate 0.005" or "false-reject rate 0.05" (no defective part scored)
    target_miss_rate: float | None  # None when no defective part was scored
    before: Report  # the parts at the version's own threshold
    after: Report  # the same parts at the calibrated threshold
    held_out: HeldOut | None
    # other miss-rate targets on the same parts: {"target_miss_rate", "threshold",
    # "miss_rate", "false_reject_rate"}; [] without defective parts
    targets: list[dict[str, float]] = field(default_factory=list)
    version: str | None = None
    folder: Path | None = None
    activated: bool = False
    notes: list[str] = field(default_factory=list)
    log: dict[str, Any] | None = None  # --from-db: which logged parts, labeled how (LogEvidence)

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "from_version": self.from_version,
            "version": self.version,
            "activated": self.activated,
            "data": self.data,
            "rule": self.rule,
            "target_miss_rate": self.target_miss_rate,
            "threshold_before": self.before.threshold,
            "threshold": self.after.threshold,
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "held_out": None if self.held_out is None else self.held_out.as_dict(),
            "targets": self.targets,
            "notes": self.notes,
            "log": self.log,
        }


def split_half_check(
    defect_scores: np.ndarray,
    good_scores: np.ndarray,
    target_miss_rate: float,
    target_false_reject_rate: float,
    splits: int = SPLITS,
    seed: int = 0,
) -> HeldOut | None:
    """Set the threshold on a random half of the defective and of the good parts, measure it on
    the other half, and the other way round, `splits` times. None with fewer than 2 good parts,
    or with exactly 1 defective part (a half without any: the rule would change kind)."""
    d = np.asarray(defect_scores, dtype=np.float64)
    g = np.asarray(good_scores, dtype=np.float64)
    if g.size < 2 or d.size == 1:
        return None
    rng = np.random.default_rng(seed)
    misses: list[float] = []
    rejects: list[float] = []
    for _ in range(splits):
        d_perm, g_perm = rng.permutation(d), rng.permutation(g)
        d_halves = np.array_split(d_perm, 2)
        g_halves = np.array_split(g_perm, 2)
        for a, b in ((0, 1), (1, 0)):
            threshold = line_threshold(
                d_halves[a], g_halves[a], target_miss_rate, target_false_reject_rate
            )
            if d.size:
                misses.append(float((d_halves[b] < threshold).mean()))
            rejects.append(float((g_halves[b] >= threshold).mean()))
    return HeldOut(
        splits=splits,
        miss_rate=float(np.mean(misses)) if misses else None,
        false_reject_rate=float(np.mean(rejects)),
        miss_rate_max=float(np.max(misses)) if misses else None,
        false_reject_rate_max=float(np.max(rejects)),
    )


def target_costs(
    defect_scores: np.ndarray, good_scores: np.ndarray, targets: list[float]
) -> list[dict[str, float]]:
    """What each miss-rate target's threshold gives on these parts (at least one defective)."""
    rows = []
    for target in targets:
        threshold = threshold_for_miss_rate(defect_scores, good_scores, target)
        rows.append(
            {
                "target_miss_rate": target,
                "threshold": threshold,
                "miss_rate": float((defect_scores < threshold).mean()),
                "false_reject_rate": float((good_scores >= threshold).mean()),
            }
        )
    return rows


def calibrate_line(home: Path, line: str, data: Path, options: CalibrateOptions) -> Calibration:
    """Score `data` with the line's model, set its threshold there, and (unless a dry run)
    save the result as a new version of the line."""
    from inspect_app.teach import EvaluateOptions, evaluate_line

    source = version_dir(home, line, options.version)
    card = read_card(source)
    target_miss = _target_miss(card, options)
    before = evaluate_line(
        home,
        line,
        data,
        EvaluateOptions(
            version=source.name,
            window_s=options.window_s,
            batch_size=options.batch_size,
            include_adapt_parts=options.include_adapt_parts,
            show_progress=options.show_progress,
            backend=options.backend,
            threads=options.threads,
            precision=options.precision,
        ),
    )
    return _set_threshold(
        home, line, card, source, before, str(Path(data).resolve()), options, target_miss
    )


def _target_miss(card: LineCard, options: CalibrateOptions) -> float:
    """The miss rate the threshold is set for (the line's own unless asked), both rates checked."""
    target_miss = options.target_miss_rate
    if target_miss is None:
        target_miss = float(card.adapt.get("target_miss_rate", DEFAULT_TARGET_MISS_RATE))
    for name, rate in (
        ("target miss rate", target_miss),
        ("target false-reject rate", options.target_false_reject_rate),
    ):
        if not 0.0 <= rate < 1.0:
            msg = f"{name} must be in [0, 1), got {rate}"
            raise ValueError(msg)
    return target_miss


def _rate(flags: np.ndarray) -> str:
    return format_rate(float(flags.mean())) if flags.size else "n/a"


def _set_threshold(
    home: Path,
    line: str,
    card: LineCard,
    source: Path,
    before: Report,
    data: str,
    options: CalibrateOptions,
    target_miss: float,
    evidence: dict[str, Any] | None = None,
    ceiling: tuple[float, str] | None = None,
) -> Calibration:
    """The threshold rule on `before`'s scores (the parts at the version's own threshold) and,
    unless a dry run, the new version with it. `evidence` (how a log's parts got their labels)
    goes into the card's calibration. `ceiling`: the highest threshold allowed, and why (for
    the note that says it held the threshold down)."""
    scored = [p for p in before.parts if p.fault is None and p.defect_score is not None]
    defect = np.array([p.defect_score for p in scored if p.is_defective], dtype=np.float64)
    good = np.array([p.defect_score for p in scored if not p.is_defective], dtype=np.float64)
    if good.size == 0:
        msg = (
            f"no good part of {data} was scored ({before.n_defective} defective, "
            f"{before.n_fault} could not be inspected): a threshold set without good parts "
            "cannot say what it costs in false rejects; label some good parts (`ok`)"
        )
        raise ValueError(msg)
    threshold = line_threshold(defect, good, target_miss, options.target_false_reject_rate)
    rule = (
        f"miss rate {target_miss:g}"
        if defect.size
        else f"false-reject rate {options.target_false_reject_rate:g}"
    )
    held_at: str | None = None
    if ceiling is not None and threshold > ceiling[0]:
        held_at = (
            f"the rule would raise the threshold to {threshold:.4f} (false-reject rate "
            f"{_rate(good >= threshold)} instead of {_rate(good >= ceiling[0])} here){ceiling[1]}"
        )
        threshold = ceiling[0]
    after = compute_metrics(before.parts, threshold, card.classes)
    after.pixel_auroc = before.pixel_auroc  # the heat-map does not depend on the threshold
    after.notes = list(before.notes)
    result = Calibration(
        line=line,
        from_version=source.name,
        data=data,
        rule=rule,
        target_miss_rate=target_miss if defect.size else None,
        before=before,
        after=after,
        held_out=split_half_check(
            defect, good, target_miss, options.target_false_reject_rate, seed=options.seed
        ),
        targets=target_costs(defect, good, sorted({*TARGETS, target_miss})) if defect.size else [],
    )
    if held_at is not None:
        result.notes.append(held_at)
    if before.n_fault:
        result.notes.append(
            f"{before.n_fault} part(s) could not be inspected and do not set the threshold "
            "(on the line they would be FAULT, never passed)"
        )
    if not defect.size:
        result.notes.append(
            "no defective part was scored: the threshold rejects at most "
            f"{options.target_false_reject_rate:g} of these good parts, and how many defects "
            "pass is unknown"
        )
    if options.dry_run:
        return result
    if held_at is not None and threshold == card.threshold:
        result.notes.append(f"no version written: {source.name} keeps its threshold")
        return result
    if evidence is not None:
        scored_by = "the scores the line logged"
    elif options.precision == "fp32":
        scored_by = options.backend
    else:
        scored_by = f"{options.backend} ({options.precision})"
    new_card = dataclasses.replace(
        card,
        threshold=threshold,
        calibration={
            "data": result.data,
            "from_version": source.name,
            "threshold_before": card.threshold,
            "rule": rule,
            "backend": scored_by,
            "n": after.n,
            "n_defective": after.n_defective,
            "n_fault": after.n_fault,
            "miss_rate": after.miss_rate,
            "miss_rate_upper_95": after.miss_rate_upper_95,
            "false_reject_rate": after.false_reject_rate,
            "false_reject_rate_upper_95": after.false_reject_rate_upper_95,
            "auroc": after.auroc,
            "held_out": None if result.held_out is None else result.held_out.as_dict(),
            **({"log": evidence} if evidence is not None else {}),
        },
    )
    folder = write_version(
        home,
        line,
        new_card,
        lambda tmp: copy_version_files(source, tmp, threshold),
        activate=options.activate,
    )
    result.version, result.folder, result.activated = folder.name, folder, options.activate
    return result


# -- --from-db: the scores the line logged, labeled as the operators corrected them --------------


@dataclass
class LogEvidence:
    """Which logged parts a `--from-db` calibration weighed, and where each label came from."""

    db: str
    versions: list[str]  # the versions whose parts were used: the same model, any threshold
    since: str | None
    until: str
    operator: int = 0  # labeled by an operator's last action in the console
    replayed: int = 0  # by the labels.csv of the dataset the line replayed
    unreviewed_pass: int = 0  # PASS parts no one corrected: taken as good
    unreviewed_fail: int = 0  # FAIL parts no one reviewed: taken as defective
    passes_checked: int = 0  # PASS parts an operator acted on or a replay labeled
    faults: int = 0  # not inspected (no score): left out
    taught: int = 0  # the parts the version was taught from: left out

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def notes(self) -> list[str]:
        """What an engineer must know about these labels before trusting the numbers."""
        out = []
        if self.unreviewed_fail:
            out.append(
                f"{self.unreviewed_fail} FAIL part(s) no operator reviewed were taken as "
                "defective (their class as the line named it): the threshold cannot rise above "
                "them; review rejects in the console (confirm / false alarm) to let it"
            )
        if self.unreviewed_pass and not self.passes_checked:
            out.append(
                f"none of the {self.unreviewed_pass} PASS part(s) was checked: the miss rate "
                "here counts only the defects among the rejects and says nothing of defects "
                "that passed"
            )
        elif self.unreviewed_pass:
            out.append(
                f"{self.unreviewed_pass} PASS part(s) no operator corrected were taken as good: "
                "a defect that passed unnoticed makes the miss rate look lower than it is "
                "(relabel escapes found later in the console)"
            )
        if self.faults:
            out.append(f"{self.faults} FAULT part(s) had no score and were left out")
        if self.taught:
            out.append(
                f"{self.taught} part(s) the version was taught from were left out "
                "(--include-adapt-parts keeps them)"
            )
        return out


_BLIND = (
    ", but no passed part was checked by an operator, so nothing here shows which defects a "
    "higher threshold would let through: it stays. Check a sample of passed parts in the "
    "console (confirm good, or relabel a defect; serve --audit-every N picks one), or "
    "--trust-passes"
)


def same_model_versions(home: Path, line: str, version: str) -> list[str]:
    """`version` and every version of `line` with the same weights: calibrations of it, the one
    it was calibrated from, and so on (their logged scores are comparable; only thresholds
    differ)."""

    def root(name: str, cards: dict[str, LineCard]) -> str:
        seen = {name}
        while (parent := cards[name].calibration.get("from_version")) in cards:
            if parent in seen:  # a loop would be a hand-edited card: stop, do not spin
                break
            seen.add(parent)
            name = parent
        return name

    cards: dict[str, LineCard] = {}
    for name in versions(home, line):
        try:
            cards[name] = read_card(version_dir(home, line, name))
        except ValueError:
            continue  # unreadable card: its parts are not counted as this model's
    if version not in cards:
        return [version]
    mine = root(version, cards)
    return [name for name in cards if root(name, cards) == mine]


def log_label(row: InspectionRow) -> tuple[str, str]:
    """The label a logged part is calibrated with, and where it came from: the operator's last
    action ("operator"), else the label the part was replayed with ("replayed"), else the
    machine's own call ("unreviewed": a PASS taken as good, a FAIL as its class)."""
    if row.operator_action is not None:
        if row.effective_verdict == "PASS":
            return OK_LABEL, "operator"
        return row.effective_class or row.defect_class or UNNAMED_DEFECT, "operator"
    if row.label:
        return row.label, "replayed"
    if row.verdict == "PASS":
        return OK_LABEL, "unreviewed"
    return row.defect_class or UNNAMED_DEFECT, "unreviewed"


def logged_parts(
    store: DefectStore,
    line: str,
    model_versions: Sequence[str],
    until: datetime,
    since: datetime | None = None,
    taught: Collection[str] = (),
    show_progress: bool = False,
) -> tuple[list[PartResult], LogEvidence]:
    """The parts of `line` that `model_versions` decided in [since, until), as labeled parts
    with their logged scores, and how they were labeled. Parts whose id is in `taught` are
    left out."""
    evidence = LogEvidence(
        db=store.url,
        versions=list(model_versions),
        since=None if since is None else since.isoformat(),
        until=until.isoformat(),
    )
    taught_ids = set(taught)
    parts: list[PartResult] = []
    rows = store.iter_inspections(line, since, until, versions=model_versions)
    if show_progress:  # a shift of a fast line is a million rows
        total = store.count(line, since, until, versions=model_versions)
        rows = tqdm(rows, total=total, desc="defect log", unit="part")
    for row in rows:
        if row.part_id in taught_ids:
            evidence.taught += 1
            continue
        if row.verdict == "FAULT" or row.defect_score is None:
            evidence.faults += 1
            continue
        label, origin = log_label(row)
        evidence.passes_checked += row.verdict == "PASS" and origin != "unreviewed"
        if origin == "unreviewed":
            if label == OK_LABEL:
                evidence.unreviewed_pass += 1
            else:
                evidence.unreviewed_fail += 1
        else:
            setattr(evidence, origin, getattr(evidence, origin) + 1)
        probs = row.class_probs
        parts.append(
            PartResult(
                part_id=row.part_id,
                label=label,
                defect_score=float(row.defect_score),
                predicted_class=max(probs, key=probs.__getitem__) if probs else None,
                latency_ms=row.latency_ms,
            )
        )
    return parts, evidence


def calibrate_from_log(
    home: Path,
    line: str,
    db_url: str,
    options: CalibrateOptions,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Calibration:
    """Set the line's threshold on the scores its model logged, labeled by the operators'
    corrections (`log_label`), and (unless a dry run) save it as a new version."""
    source = version_dir(home, line, options.version)
    card = read_card(source)
    target_miss = _target_miss(card, options)
    # a window that ends now: what a running serve logs meanwhile is left for the next time
    until = until or datetime.now(timezone.utc)
    model_versions = same_model_versions(home, line, source.name)
    taught = () if options.include_adapt_parts else card.adapt.get("part_ids", ())
    with DefectStore.open(db_url) as store:
        parts, evidence = logged_parts(
            store, line, model_versions, until, since, taught, options.show_progress
        )
    if not parts:
        window = f" from {since.isoformat()}" if since else ""
        msg = (
            f"the defect log {db_url} has no inspected part of line {line!r} decided by "
            f"{', '.join(model_versions)}{window} until {until.isoformat()} "
            f"({evidence.faults} FAULT, {evidence.taught} taught from); run the line first, "
            "or calibrate on a labeled folder with --data"
        )
        raise ValueError(msg)
    before = compute_metrics(parts, card.threshold, card.classes)
    before.parts = parts
    described = f"defect log {db_url} ({len(parts)} parts of {', '.join(model_versions)})"
    # no passed part checked: a defect that passed unnoticed is invisible, so nothing shows
    # what a higher threshold would let through; it may only come down (escapes) or stay
    blind = evidence.passes_checked == 0 and not options.trust_passes
    result = _set_threshold(
        home,
        line,
        card,
        source,
        before,
        described,
        options,
        target_miss,
        evidence.as_dict(),
        ceiling=(card.threshold, _BLIND) if blind else None,
    )
    result.notes[:0] = evidence.notes()
    result.log = evidence.as_dict()
    return result


def copy_version_files(source: Path, target: Path, threshold: float) -> None:
    """Copy a version's files (weights, adapter, exported graphs and engines) into `target`,
    except its card and model card, which `write_version` writes; exported metadata
    (`<graph>.json`, `models.export.ExportMetadata`) gets `threshold`."""
    for item in sorted(source.iterdir()):
        if item.name in (CARD_FILE, MODEL_CARD) or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, target / item.name)
        else:
            shutil.copy2(item, target / item.name)
    for meta in sorted(target.glob("*.json")):
        try:
            raw = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not export metadata: copied as it was
        if isinstance(raw, dict) and {"threshold", "model_sha256"} <= set(raw):
            raw["threshold"] = float(threshold)
            meta.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
