"""The service as a subprocess (real store, replay, signals; fake backend): SIGKILL loses no
committed row and leaves a sound database, restarts continue without duplicates, SIGTERM drains,
corrupt inputs become FAULT rows, a locked database holds the line instead of crashing, and two
lines served at once into one log keep their rows and snapshots apart."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

HELPER = Path(__file__).with_name("fake_line_service.py")
N_GOOD = 60


def _frame(value: int) -> np.ndarray:
    """A 16 px frame of `value` with one pixel off it (a uniform frame is a dark camera)."""
    frame = np.full((16, 16, 3), value, np.uint8)
    frame[0, 0] ^= 1
    return frame


def write_dataset(folder: Path, n_good: int = N_GOOD) -> list[str]:
    """A small line: good and dented parts, plus a corrupt PNG, a truncated .npy and NaN samples."""
    folder.mkdir(parents=True)
    rows = ["part_id,image,vibration,sample_rate_hz,label"]
    ids = []
    for i in range(n_good):
        pid = f"part-{i:03d}"
        cv2.imwrite(str(folder / f"{pid}.png"), _frame(i))
        # each part its own window: one repeating the part's before is a frozen feed (FAULT)
        wave = np.sin(np.arange(512, dtype=np.float32) * (0.1 + i / 10_000))
        np.save(folder / f"{pid}.npy", wave)
        rows.append(f"{pid},{pid}.png,{pid}.npy,2000,{'dent' if i % 5 == 0 else 'ok'}")
        ids.append(pid)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    np.save(folder / "good.npy", np.zeros(512, np.float32))
    rows.append("bad-image,corrupt.png,good.npy,2000,ok")
    full = folder / "full.npy"
    np.save(full, np.ones(4096, np.float32))
    (folder / "truncated.npy").write_bytes(full.read_bytes()[:300])
    cv2.imwrite(str(folder / "img.png"), _frame(0))
    rows.append("bad-vibration,img.png,truncated.npy,2000,ok")
    nan = np.ones(512, np.float32)
    nan[100] = np.nan
    np.save(folder / "nan.npy", nan)
    rows.append("nan-samples,img.png,nan.npy,2000,ok")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return [*ids, "bad-image", "bad-vibration", "nan-samples"]


def start(tmp_path: Path, dataset: Path, delay_s: float, *extra: str) -> subprocess.Popen[str]:
    db = tmp_path / "log" / "inspect.db"
    db.parent.mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        str(HELPER),
        "--home",
        str(tmp_path),
        "--source",
        str(dataset),
        "--db",
        f"sqlite:///{db}",
        "--delay-s",
        str(delay_s),
        *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def rows_by_line(db: Path) -> dict[str, list[str]]:
    by_line: dict[str, list[str]] = {}
    with sqlite3.connect(db, timeout=10) as conn:
        query = (
            "SELECT lines.name, inspections.part_id FROM inspections "
            "JOIN lines ON lines.id = inspections.line_id ORDER BY inspections.id"
        )
        for line, part in conn.execute(query):
            by_line.setdefault(line, []).append(part)
    return by_line


def rows(db: Path) -> list[tuple[str, str, str | None]]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            return list(
                conn.execute("SELECT part_id, verdict, fault_reason FROM inspections ORDER BY id")
            )
        except sqlite3.OperationalError:  # the schema is not created yet
            return []


def wait_for_rows(db: Path, n: int, proc: subprocess.Popen[str], timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        have = len(rows(db))
        if have >= n:
            return have
        if proc.poll() is not None:
            pytest.fail(f"service exited {proc.returncode} early: {proc.communicate()[1]}")
        time.sleep(0.05)
    pytest.fail(f"fewer than {n} rows after {timeout_s} s")


@pytest.mark.slow
def test_sigkill_loses_nothing_committed_and_restart_has_no_duplicates(tmp_path: Path) -> None:
    ids = write_dataset(tmp_path / "line")
    db = tmp_path / "log" / "inspect.db"
    proc = start(tmp_path, tmp_path / "line", delay_s=0.05)
    wait_for_rows(db, 10, proc)
    before = rows(db)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    after_kill = rows(db)
    assert after_kill[: len(before)] == before  # every row seen committed is still there
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(after_kill) < len(ids)  # it really was killed mid-run

    proc = start(tmp_path, tmp_path / "line", delay_s=0.0)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "already in the log" in err
    final = [r[0] for r in rows(db)]
    assert len(final) == len(set(final)) == len(ids)
    assert set(final) == set(ids)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_sigterm_drains_commits_and_exits_zero(tmp_path: Path) -> None:
    ids = write_dataset(tmp_path / "line", n_good=200)  # more than the queues hold
    db = tmp_path / "log" / "inspect.db"
    proc = start(tmp_path, tmp_path / "line", delay_s=0.05)
    wait_for_rows(db, 6, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "SIGTERM" in err
    done = [r[0] for r in rows(db)]
    assert 6 <= len(done) < len(ids)
    assert done == ids[: len(done)]  # a prefix: nothing read was lost on the way out


def test_sighup_swaps_the_model_between_two_parts_and_loses_none(tmp_path: Path) -> None:
    """`systemctl reload`: the active version is loaded while the old one inspects, then
    handed to the running pipeline (the source stays open), and the parts prepared after it
    are inspected with the new version; no part is lost or inspected twice, and SIGHUP does
    not end the service (its default action would)."""
    ids = write_dataset(tmp_path / "line", n_good=200)
    db = tmp_path / "log" / "inspect.db"
    proc = start(tmp_path, tmp_path / "line", 0.05, "--reload-version", "v2")
    wait_for_rows(db, 6, proc)
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "v2" not in versions(db):
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    wait_for_rows(db, len(rows(db)) + 4, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "reload: line fake-line: inspecting with v2 (was v1); the source stayed open" in err
    done = [r[0] for r in rows(db)]
    assert done == ids[: len(done)]  # in order, none lost, none twice
    seen = versions(db)
    switch = seen.index("v2")
    assert switch >= 6 and set(seen[:switch]) == {"v1"} and set(seen[switch:]) == {"v2"}


def versions(db: Path) -> list[str]:
    """The model version of each logged inspection, in log order."""
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            return [
                v
                for (v,) in conn.execute(
                    "SELECT m.version FROM inspections i JOIN model_versions m "
                    "ON i.model_version_id = m.id ORDER BY i.id"
                )
            ]
        except sqlite3.OperationalError:
            return []


def test_corrupt_inputs_become_fault_rows_and_the_line_keeps_running(tmp_path: Path) -> None:
    ids = write_dataset(tmp_path / "line")
    proc = start(tmp_path, tmp_path / "line", delay_s=0.0)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    got = {pid: (verdict, reason) for pid, verdict, reason in rows(tmp_path / "log" / "inspect.db")}
    assert set(got) == set(ids)
    for pid, needle in (
        ("bad-image", "corrupt.png"),
        ("bad-vibration", "truncated.npy"),
        ("nan-samples", "nan.npy"),
    ):
        verdict, reason = got[pid]
        assert verdict == "FAULT" and needle in str(reason), (pid, reason)
    assert sum(v == "FAIL" for v, _ in got.values()) == N_GOOD // 5
    assert sum(v == "PASS" for v, _ in got.values()) == N_GOOD - N_GOOD // 5
    snapshots = tmp_path / "log" / "snapshots" / "fake-line"  # the line's own folder
    assert len(list(snapshots.glob("*-FAIL.jpg"))) == N_GOOD // 5


@pytest.mark.slow
def test_locked_database_holds_the_line_then_continues(tmp_path: Path) -> None:
    ids = write_dataset(tmp_path / "line")
    db = tmp_path / "log" / "inspect.db"
    proc = start(tmp_path, tmp_path / "line", delay_s=0.02)
    wait_for_rows(db, 4, proc)
    locker = sqlite3.connect(db, timeout=10, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    time.sleep(8)  # longer than the store's busy timeout: writes fail, the pipeline retries
    assert proc.poll() is None, "the service must wait, not exit"
    locker.execute("ROLLBACK")
    locker.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "locked" in err
    final = [r[0] for r in rows(db)]
    assert sorted(final) == sorted(ids)


@pytest.mark.slow
def test_two_lines_served_at_once_share_the_log_and_keep_their_snapshots_apart(
    tmp_path: Path,
) -> None:
    """Two `serve` processes (one per line, as the systemd template runs them) write into one
    SQLite log at the same time: every part of both lines is logged once, and each line's
    snapshots sit in their own folder under their own retention limit."""
    ids = write_dataset(tmp_path / "line")
    db = tmp_path / "log" / "inspect.db"
    a = start(tmp_path, tmp_path / "line", 0.01, "--line", "line-a", "--snapshot-max-parts", "3")
    b = start(tmp_path, tmp_path / "line", 0.01, "--line", "line-b")
    for proc in (a, b):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    by_line = rows_by_line(db)
    assert sorted(by_line) == ["line-a", "line-b"]
    for parts in by_line.values():
        assert sorted(parts) == sorted(ids)  # each part once per line, none lost to the other
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        written = dict(
            conn.execute(
                "SELECT lines.name, COUNT(inspections.snapshot_path) FROM inspections "
                "JOIN lines ON lines.id = inspections.line_id GROUP BY lines.name"
            )
        )
    assert written["line-a"] == written["line-b"] > 3
    folder = tmp_path / "log" / "snapshots"
    snaps_a = {p.stem for p in (folder / "line-a").iterdir()}
    snaps_b = {p.stem for p in (folder / "line-b").iterdir()}
    assert len(snaps_a) == 3  # line-a's limit pruned only line-a's folder
    assert len(snaps_b) == written["line-b"]
    assert not [p for p in folder.iterdir() if p.is_file()]  # nothing written at the top


def test_serve_shares_out_cores_and_checks_its_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--threads` (a line's share of the cores) and the snapshot limits reach the service;
    nonsense values are refused before anything starts."""
    from inspect_app import service
    from inspect_app.cli import main

    seen: list[service.ServeOptions] = []

    def fake_serve(options: service.ServeOptions) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(service, "serve", fake_serve)
    argv = ["serve", "--home", str(tmp_path), "--line", "l", "--source", "x", "--http", "off"]
    assert main([*argv, "--threads", "1", "--snapshot-max-parts", "50"]) == 0
    assert main([*argv, "--snapshot-max-mb", "1.5"]) == 0
    assert seen[0].threads == 1 and seen[0].snapshot_max_parts == 50
    assert seen[1].threads is None and seen[1].snapshot_max_bytes == int(1.5 * 2**20)
    for bad, message in (
        (["--threads", "0"], "--threads must be positive, got 0"),
        (["--snapshot-max-mb", "0"], "--snapshot-max-mb must be positive"),
        (["--batch-size", "-1"], "--batch-size must be positive"),
        (["--threads", "2", "--backend", "tensorrt"], "--threads is for the CPU backends"),
    ):
        assert main([*argv, *bad]) == 2
        assert message in capsys.readouterr().err
    assert len(seen) == 2


def test_how_a_running_line_takes_another_version() -> None:
    """serve's reload and the console's switch decide alike: hand the version down the running
    pipeline, open the source anew (it reads frames or a hot folder otherwise), or refuse it
    (the camera has no vibration for a line taught on it) and keep the running one."""
    from types import SimpleNamespace

    from inspect_app.service import swap_plan
    from inspect_app.sources import CameraLine

    def card(**kw: object) -> SimpleNamespace:
        fields: dict[str, object] = {"roi": None, "image_bits": None, "modalities": ["image"]}
        return SimpleNamespace(**{**fields, **kw})

    camera = CameraLine.__new__(CameraLine)  # not opened: only what the plan reads
    camera.vibration, camera.name = None, "cam0"
    folder = object()  # a dataset replay or a hot folder: says per part what it holds
    assert swap_plan(folder, "l", card(), card(), watch=False) == ("swap", None)
    assert swap_plan(folder, "l", card(), card(roi=[0, 0, 64, 64]), watch=False) == (
        "reopen",
        "has another region of interest",
    )
    fused = card(modalities=["image", "vibration"])
    assert swap_plan(folder, "l", card(), fused, watch=True) == ("reopen", "has other sensors")
    assert swap_plan(folder, "l", card(), fused, watch=False) == ("swap", None)
    how, why = swap_plan(camera, "l", card(), fused, watch=False)
    assert how == "refuse" and why is not None and "needs --vibration" in why
    how, why = swap_plan(
        camera, "l", card(), card(modalities=["image", "vibration"], roi=[1, 1, 8, 8]), watch=False
    )
    assert how == "refuse"  # refused before any reopen: the camera would not feed it either


def test_a_line_taught_on_windows_is_served_windows_of_its_recordings(tmp_path: Path) -> None:
    """`adapt --window-s` teaches a line on windows of long recordings; serve replays the same
    recordings cut into those windows (as evaluate does), unless --window-s says otherwise."""
    from inspect_app.lines import line_window_s
    from inspect_app.service import InspectionService, LoadedLine, ServeOptions, swap_plan
    from inspect_app.sources import DatasetReplay
    from inspect_app.store import DefectStore
    from tests.inspect_app.fake_line_service import FakeSlowBackend
    from tests.inspect_app.test_service_http import HotFolderCard

    data = tmp_path / "recordings"
    data.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.save(data / f"{name}.npy", rng.normal(size=4000 * 2).astype(np.float32))  # 2 s
    (data / "labels.csv").write_text(
        "vibration,label,sample_rate_hz\na.npy,ok,4000\nb.npy,dent,4000\n", encoding="utf-8"
    )
    card = HotFolderCard(modalities=("vibration",), adapt={"window_s": 0.5})
    assert line_window_s(None, card, watch=False) == 0.5
    assert line_window_s(1.0, card, watch=False) == 1.0  # asked for: as asked
    assert line_window_s(None, card, watch=True) is None  # a hot folder's file is one part
    whole = HotFolderCard(modalities=("vibration",))
    assert swap_plan(object(), "l", whole, card, watch=False) == (
        "reopen",
        "was taught on other vibration windows",
    )

    db = f"sqlite:///{tmp_path / 'log.db'}"
    options = ServeOptions(home=tmp_path, line="rig", source=str(data), db_url=db, http=None)
    loaded = LoadedLine(FakeSlowBackend(0.0), card, tmp_path, "v1", None)
    service = InspectionService.build(options, loaded=loaded, preprocess=list)
    assert isinstance(service.pipeline.source, DatasetReplay)
    service.run(install_signals=False)
    with DefectStore.open(db) as store:
        logged = sorted(r.part_id for r in store.inspections(line="rig"))
    assert len(logged) == 8 and all("#" in part for part in logged)  # 2 recordings x 4 windows
