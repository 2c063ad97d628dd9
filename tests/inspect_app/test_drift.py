"""Drift: the monitor says when parts score higher than a version's first parts did, and only
then; its reference comes from the defect log; serve's endpoints and --drift-command show it."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from inspect_app.decision import Verdict, fault
from inspect_app.drift import DriftMonitor, DriftSettings, DriftState
from inspect_app.http_server import drift_json, drift_metrics
from inspect_app.pipeline import InspectedPart
from inspect_app.service import InspectionService
from inspect_app.store import DefectStore, InspectionRecord
from sensors.sample import Sample


def scored(value: float, version: str = "v1") -> InspectedPart:
    verdict = Verdict("PASS", defect_score=value)
    return InspectedPart(Sample(part_id="p"), verdict, model_version=version)


def feed(monitor: DriftMonitor, values: np.ndarray, version: str = "v1") -> None:
    for v in values:
        monitor.handle(scored(float(v), version))


def test_quiet_while_nothing_changes_then_says_so_and_when_it_is_back() -> None:
    rng = np.random.default_rng(0)
    changes: list[tuple[bool, int]] = []
    seen = [0]
    monitor = DriftMonitor(
        "l", lambda version, n: (), on_change=lambda s: changes.append((s.drifted, seen[0]))
    )
    settings = monitor.settings
    same = rng.normal(0, 1, settings.reference_parts + 5000)
    for v in same:  # the reference, then 5,000 parts like it: not a word
        monitor.handle(scored(float(v)))
        seen[0] += 1
    assert changes == []
    state = monitor.state()
    assert state is not None and not state.drifted and state.reference == 500
    assert state.recent == settings.window and state.p_value is not None
    start = seen[0]
    for v in rng.normal(1.0, 1, 400):  # the good parts score a spread higher: a lamp ageing
        monitor.handle(scored(float(v)))
        seen[0] += 1
    assert len(changes) == 1 and changes[0][0] is True
    assert changes[0][1] - start <= settings.window  # said within one window
    state = monitor.state()
    assert state is not None and state.drifted and state.direction == "higher"
    assert state.higher is not None and state.higher > 0.65
    for v in rng.normal(0, 1, 600):  # the lamp replaced
        monitor.handle(scored(float(v)))
        seen[0] += 1
    assert [d for d, _ in changes] == [True, False]


def test_scores_that_fall_are_drift_too() -> None:
    """A change that makes parts look better than they did (a light that washes a defect out)
    lets defects pass: said as well, as "lower"."""
    rng = np.random.default_rng(2)
    changes: list[DriftState] = []
    reference = [(float(v), False) for v in rng.normal(0, 1, 500)]
    monitor = DriftMonitor("l", lambda version, n: reference, on_change=changes.append)
    feed(monitor, rng.normal(0, 1, 1000))
    assert changes == []
    feed(monitor, rng.normal(-1.0, 1, 300))
    assert len(changes) == 1 and changes[0].drifted and changes[0].direction == "lower"


def test_faults_and_parts_without_a_score_do_not_count() -> None:
    monitor = DriftMonitor("l", lambda version, n: [(0.0, False)] * n)
    monitor.handle(
        InspectedPart(Sample(part_id="a"), Verdict("PASS", anomaly_score=9.0), model_version="v1")
    )  # the anomaly score alone is not what the line decides on
    monitor.handle(InspectedPart(Sample(part_id="f"), fault("camera lost"), model_version="v1"))
    monitor.handle(scored(float("nan")))
    monitor.handle(InspectedPart(Sample(part_id="n"), Verdict("PASS"), model_version="v1"))
    state = monitor.state()
    assert state is None or state.recent == 0


def test_the_reference_comes_from_the_log_and_each_version_has_its_own() -> None:
    """A restart does not forget: a version's reference is read once from the log, so the
    first window of new parts is judged at once; another version gets its own reference."""
    asked: list[str] = []
    rng = np.random.default_rng(1)
    logged = {
        version: [(float(v), False) for v in rng.normal(mean, 1, 500)]
        for version, mean in (("v1", 0), ("v2", 5))
    }

    def reference(version: str, n: int) -> list[tuple[float, bool]]:
        asked.append(version)
        return logged.get(version, [])[:n]

    changes: list[DriftState] = []
    monitor = DriftMonitor("l", reference, on_change=changes.append)
    feed(monitor, rng.normal(3, 1, 200))  # far above v1's reference: said within the window
    assert asked == ["v1"] and len(changes) == 1 and changes[0].version == "v1"
    feed(monitor, rng.normal(5, 1, 300), "v2")  # v2 scores that high from the start: no drift
    assert asked == ["v1", "v2"] and len(changes) == 1
    state = monitor.state()
    assert state is not None and state.version == "v2" and not state.drifted
    feed(monitor, rng.normal(0, 1, 700), "v3")  # nothing logged: collected live, then judged
    state = monitor.state()
    assert state is not None and state.version == "v3" and state.reference == 500
    assert state.recent == 200 and state.p_value is not None


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="alpha"):
        DriftSettings(alpha=0.1, clear_alpha=0.01)
    with pytest.raises(ValueError, match="window must be at least 1"):
        DriftSettings(window=0)
    with pytest.raises(ValueError, match="min_reference"):
        DriftSettings(reference_parts=50)


def record(part: str, version: str, score: float | None, verdict: str = "PASS") -> Any:
    return InspectionRecord(
        line="press-1",
        model_version=version,
        part_id=part,
        timestamp=datetime.now(timezone.utc),
        verdict=verdict,  # type: ignore[arg-type]
        defect_score=score,
        fault_reason="camera lost" if verdict == "FAULT" else None,
    )


def test_the_log_gives_a_versions_first_scores_oldest_first(tmp_path: Path) -> None:
    with DefectStore.open(f"sqlite:///{tmp_path / 'log.db'}") as store:
        store.add_inspections(
            [
                record("a", "v1", 1.0),
                record("b", "v2", 9.0),
                record("c", "v1", None, "FAULT"),
                record("d", "v1", 2.0, "FAIL"),
                record("e", "v1", 3.0),
            ]
        )
        assert store.first_scores("press-1", "v1", 500) == [(1.0, False), (2.0, True), (3.0, False)]
        assert store.first_scores("press-1", "v1", 2) == [(1.0, False), (2.0, True)]
        assert store.first_scores("press-1", "v2", 500) == [(9.0, False)]
        assert store.first_scores("press-1", "v9", 500) == []
        assert store.first_scores("other", "v1", 500) == []


def test_healthz_and_metrics_show_the_drift() -> None:
    state = DriftState("v3", 500, 200, 0.81, 1e-12, True, 0.1, 0.42)
    body = drift_json(state)
    assert body["drifted"] is True and body["direction"] == "higher"
    assert body["recent_scores_higher"] == 0.81 and body["rejected_recent"] == 0.42
    text = drift_metrics(state, 'press "1"')
    assert 'inspect_drift{line="press \\"1\\""} 1' in text
    assert 'inspect_drift_higher{line="press \\"1\\""} 0.81' in text
    said = state.describe("press-1")
    assert "press-1 v3" in said and "rejected 10 % of them then, 42 % of the recent" in said
    lower = DriftState("v3", 500, 200, 0.3, 1e-12, True, 0.1, 0.02)
    assert lower.direction == "lower" and "defects may start to pass" in lower.describe("x")


def test_the_drift_command_runs_on_its_own_thread_with_the_state(tmp_path: Path) -> None:
    out = tmp_path / "drift.txt"
    script = tmp_path / "say.py"
    script.write_text(
        "import os\ne = os.environ\n"
        "open(e['OUT'], 'a').write(' '.join(e[k] for k in ('INSPECT_LINE', "
        "'INSPECT_MODEL_VERSION', 'INSPECT_DRIFT', 'INSPECT_DRIFT_HIGHER')) + '\\n')\n"
    )
    import os
    import sys

    os.environ["OUT"] = str(out)
    try:
        notes: list[str] = []
        service = SimpleNamespace(
            options=SimpleNamespace(line="press-1", drift_command=f"{sys.executable} {script}"),
            notifier=SimpleNamespace(status=notes.append),
            stats=SimpleNamespace(record_sink_error=notes.append),
        )
        changed: Any = InspectionService._drift_changed  # on a stand-in for the service
        changed(service, DriftState("v3", 500, 200, 0.81, 1e-12, True, 0.1, 0.42))
        changed(service, DriftState("v3", 500, 200, 0.49, 0.6, False, 0.1, 0.09))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            not out.exists() or len(out.read_text().splitlines()) < 2
        ):
            time.sleep(0.05)
    finally:
        del os.environ["OUT"]
    assert sorted(out.read_text().splitlines()) == ["press-1 v3 0 0.490", "press-1 v3 1 0.810"]
    assert "drifted higher" in notes[0] and "back" in notes[1]
