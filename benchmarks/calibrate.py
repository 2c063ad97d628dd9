"""What setting a line's threshold on more labeled parts buys (`inspect-app calibrate`).

Each held-out synthetic line (seeds pretraining never used; the few-shot benchmark's lines) is
taught with `adapt --samples 50` from the few-shot pool (`--seeds`: the sampling seeds, each
its own run; the shipped backbone), then:

- its threshold is calibrated on a second set of labeled parts (`calibrate_line`, dry run: the
  thresholds it sets for each miss-rate target, its split-half estimate);
- a third set, never seen by either, is scored once (the model does not change, only the
  threshold) and each threshold is applied to those scores: the adapt threshold (set on 50 parts
  out-of-fold) and the calibrated ones.

It prints, per line and target, the miss and false-reject rates on the test parts, and how well
the split-half check foretold them.

`calibrate --from-db` is measured on the same parts: the calibration parts are logged as the
line decided them (adapt's threshold, into a SQLite log), an operator reviews every FAIL
(confirm or false alarm, by the truth) and finds each escape (a defective part that passed) with
probability `--escapes-found`; the threshold `calibrate_from_log` sets on that log is applied to
the test parts. Escapes never found count as good in the log: the rows show what that costs.

Run (OMP_NUM_THREADS=1 is how the docs' numbers were made; about 25 minutes for five lines
and one seed, generating their parts included):
    python -m benchmarks.calibrate --seeds 0 1 2
    python -m benchmarks.calibrate --lines 101 --calibration-parts 200 --test-parts 200
    python -m benchmarks.calibrate --escapes-found 1 0.5 0     # the --from-db rows' operators
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fewshot import cached_line
from inspect_app.calibrate import (
    TARGETS,
    CalibrateOptions,
    calibrate_from_log,
    calibrate_line,
    split_half_check,
)
from inspect_app.defaults import DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE
from inspect_app.metrics import PartResult, line_threshold
from inspect_app.store import DefectStore, InspectionRecord
from inspect_app.teach import EvaluateOptions, TeachOptions, evaluate_line, teach_line

HELD_OUT_LINES = (101, 202, 303, 404, 505)
CALIBRATION_START, TEST_START = 200000, 300000  # part numbers no other benchmark draws
IMAGE_SIZE = 256  # frames as the generator draws them by default (the template at 256 px)


def line_folder(cache: Path, seed: int, name: str, parts: int, start: int, share: float) -> Path:
    """The line's parts at 256 px (the generator's default size), cached as fewshot's are."""
    return cached_line(cache, seed, name, parts, start, IMAGE_SIZE, defect_fraction=share)


def rates(scores: np.ndarray, defective: np.ndarray, threshold: float) -> tuple[float, float]:
    """Miss and false-reject rates of `threshold` on scored parts."""
    return (
        float((scores[defective] < threshold).mean()),
        float((scores[~defective] >= threshold).mean()),
    )


def run_line(seed: int, draw: int, args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """Line `seed` taught from the 50 parts sampling seed `draw` picks, calibrated, tested."""
    pool = line_folder(args.cache, seed, "pool", 120, 0, 0.5)
    calibration = line_folder(
        args.cache, seed, "calibration", args.calibration_parts, CALIBRATION_START, args.share
    )
    test = line_folder(args.cache, seed, "test-cal", args.test_parts, TEST_START, args.share)
    line = f"synth-{seed}-draw{draw}"
    options = TeachOptions(samples=50, seed=draw, show_progress=False)
    taught = teach_line(home, line, pool, options)
    options = EvaluateOptions(batch_size=16, show_progress=False)
    scored = evaluate_line(home, line, test, options)
    parts = [p for p in scored.parts if p.fault is None and p.defect_score is not None]
    scores = np.array([p.defect_score for p in parts], dtype=np.float64)
    defective = np.array([p.is_defective for p in parts])
    miss, frr = rates(scores, defective, taught.card.threshold)
    adapt_rates = {"miss_rate": miss, "false_reject_rate": frr}
    out: dict[str, Any] = {
        "line": seed,
        "draw": draw,
        "test_parts": len(parts),
        "test_defective": int(defective.sum()),
        "auroc": scored.auroc,
        "adapt": adapt_rates,
        "targets": [],
    }
    # one calibration run scores the calibration parts; the other targets reuse its scores
    cal = calibrate_line(
        home,
        line,
        calibration,
        CalibrateOptions(
            target_miss_rate=args.targets[0], batch_size=16, show_progress=False, dry_run=True
        ),
    )
    cal_parts = [p for p in cal.before.parts if p.fault is None and p.defect_score is not None]
    cal_scores = np.array([p.defect_score for p in cal_parts], dtype=np.float64)
    cal_defective = np.array([p.is_defective for p in cal_parts])
    d, g = cal_scores[cal_defective], cal_scores[~cal_defective]
    for target in args.targets:
        threshold = line_threshold(d, g, target, DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE)
        if target == args.targets[0]:
            assert threshold == cal.after.threshold
        miss, frr = rates(scores, defective, threshold)
        in_miss, in_frr = rates(cal_scores, cal_defective, threshold)
        held = split_half_check(d, g, target, DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE)
        out["targets"].append(
            {
                "target_miss_rate": target,
                "calibration_defective": int(d.size),
                "test_miss_rate": miss,
                "test_false_reject_rate": frr,
                "in_sample_miss_rate": in_miss,
                "in_sample_false_reject_rate": in_frr,
                "split_half_miss_rate": None if held is None else held.miss_rate,
                "split_half_false_reject_rate": None if held is None else held.false_reject_rate,
            }
        )
    out["from_log"] = from_log(
        home, line, taught.card.version, taught.card.threshold, cal_parts, scores, defective, args
    )
    return out


def from_log(
    home: Path,
    line: str,
    version: str,
    threshold: float,
    cal_parts: Sequence[PartResult],
    test_scores: np.ndarray,
    test_defective: np.ndarray,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """The calibration parts logged as `version` decided them at `threshold`, every FAIL reviewed
    and each escape found with probability `args.escapes_found`; the threshold `calibrate
    --from-db` sets on that log for each target, applied to the test parts."""
    rows = []
    logged_at = datetime.now(timezone.utc) - timedelta(hours=1)
    for found in args.escapes_found:
        db = f"sqlite:///{home / f'log-{line}-{found:g}.db'}"
        rng = np.random.default_rng(0)
        with DefectStore.open(db) as store:
            fails = [p.defect_score is not None and p.defect_score >= threshold for p in cal_parts]
            records = [
                InspectionRecord(
                    line,
                    version,
                    p.part_id,
                    logged_at,
                    "FAIL" if failed else "PASS",  # type: ignore[arg-type]
                    defect_class=p.predicted_class if failed else None,
                    defect_score=p.defect_score,
                )
                for p, failed in zip(cal_parts, fails, strict=True)
            ]
            ids = store.add_inspections(records)
            for p, failed, inspection in zip(cal_parts, fails, ids, strict=True):
                if failed:
                    action = "relabel" if p.is_defective else "false_alarm"
                    new_class = p.label if p.is_defective else None
                    store.add_operator_action(inspection, action, "reviewer", new_class=new_class)
                elif p.is_defective and rng.random() < found:  # an escape found downstream
                    store.add_operator_action(inspection, "relabel", "reviewer", new_class=p.label)
        # with no escape found no passed part was checked: the command holds the threshold
        # unless --trust-passes, measured both ways
        for target, trust in [(t, False) for t in args.targets] + [
            (t, True) for t in args.targets if found == 0
        ]:
            options = CalibrateOptions(
                target_miss_rate=target, show_progress=False, dry_run=True, trust_passes=trust
            )
            cal = calibrate_from_log(home, line, db, options)
            miss, frr = rates(test_scores, test_defective, cal.after.threshold)
            rows.append(
                {
                    "escapes_found": found,
                    "trust_passes": trust,
                    "target_miss_rate": target,
                    "log_miss_rate": cal.after.miss_rate,  # what the command printed
                    "test_miss_rate": miss,
                    "test_false_reject_rate": frr,
                }
            )
    return rows


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def mean_sd(values: Sequence[float | None]) -> str:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return "n/a"
    return f"{100 * v.mean():.1f} ± {100 * v.std():.1f} %"


HEADS = ("test miss", "test false-reject", "split-half miss", "split-half false-reject")


def report(results: Sequence[dict[str, Any]]) -> None:
    print("| line | threshold | " + " | ".join(HEADS) + " |")
    print("| --- " * (len(HEADS) + 2) + "|")
    adapt_row = "adapt (50 parts, out-of-fold)"
    for r in results:
        a = r["adapt"]
        miss, frr = pct(a["miss_rate"]), pct(a["false_reject_rate"])
        name = f"{r['line']} (seed {r['draw']})"
        print(f"| {name} | {adapt_row} | {miss} | {frr} | | |")
        for t in r["targets"]:
            print(
                f"| {name} | calibrated, target {t['target_miss_rate']:g} | "
                f"{pct(t['test_miss_rate'])} | {pct(t['test_false_reject_rate'])} | "
                f"{pct(t['split_half_miss_rate'])} | {pct(t['split_half_false_reject_rate'])} |"
            )
    print()
    print("| threshold | " + " | ".join(HEADS) + " | runs |")
    print("| --- " * (len(HEADS) + 2) + "|")
    miss = mean_sd([r["adapt"]["miss_rate"] for r in results])
    frr = mean_sd([r["adapt"]["false_reject_rate"] for r in results])
    print(f"| {adapt_row} | {miss} | {frr} | | | {len(results)} |")  # runs: lines x seeds
    targets = sorted({t["target_miss_rate"] for r in results for t in r["targets"]})
    for target in targets:
        rows = [t for r in results for t in r["targets"] if t["target_miss_rate"] == target]
        print(
            f"| calibrated, target {target:g} | {mean_sd([t['test_miss_rate'] for t in rows])} | "
            f"{mean_sd([t['test_false_reject_rate'] for t in rows])} | "
            f"{mean_sd([t['split_half_miss_rate'] for t in rows])} | "
            f"{mean_sd([t['split_half_false_reject_rate'] for t in rows])} | {len(rows)} |"
        )
    logged = [row for r in results for row in r.get("from_log", [])]
    if logged:
        print()
        print("| calibrate --from-db | escapes found | log says: miss | test miss | test "
              "false-reject | runs |")  # fmt: skip
        print("| --- " * 6 + "|")
        ways = sorted({(row["escapes_found"], row["trust_passes"]) for row in logged})
        for target in targets:
            for found, trust in reversed(ways):
                rows = [
                    row
                    for row in logged
                    if row["target_miss_rate"] == target
                    and (row["escapes_found"], row["trust_passes"]) == (found, trust)
                ]
                how = f"{100 * found:.0f} %" + (", --trust-passes" if trust else "")
                print(
                    f"| target {target:g} | {how} | "
                    f"{mean_sd([row['log_miss_rate'] for row in rows])} | "
                    f"{mean_sd([row['test_miss_rate'] for row in rows])} | "
                    f"{mean_sd([row['test_false_reject_rate'] for row in rows])} | {len(rows)} |"
                )
    aurocs = [r["auroc"] for r in results if r["auroc"] is not None]
    print(f"\ntest AUROC (the same at any threshold): {np.mean(aurocs):.3f} ± {np.std(aurocs):.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, nargs="+", default=list(HELD_OUT_LINES))
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="sampling seeds of the 50 adapt parts"
    )
    ap.add_argument("--calibration-parts", type=int, default=400)
    ap.add_argument("--test-parts", type=int, default=400)
    ap.add_argument("--share", type=float, default=0.4, help="defective share of both sets")
    ap.add_argument("--targets", type=float, nargs="+", default=[TARGETS[0], 0.01, 0.02, 0.05])
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "inspect-app-fewshot",
        help="where the generated synthetic lines are kept between runs (shared with fewshot)",
    )
    ap.add_argument(
        "--escapes-found",
        type=float,
        nargs="+",
        default=[1.0, 0.5, 0.0],
        metavar="P",
        help="calibrate --from-db rows: the share of escapes (defective parts that passed) the "
        "operators find and relabel; every FAIL is reviewed",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as home:
        for seed in args.lines:
            for draw in args.seeds:
                print(f"line {seed}, sampling seed {draw} ...", file=sys.stderr, flush=True)
                results.append(run_line(seed, draw, args, Path(home)))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
