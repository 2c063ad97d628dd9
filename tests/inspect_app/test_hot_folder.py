"""The hot-folder source (`inspect-app serve --watch`): parts arrive as files another program
writes; a file is read only once it has stopped growing, a part missing a sensor's file is a
FAULT, and the service stops cleanly while it waits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspect_app.service import InspectionService, LoadedLine, ServeOptions
from inspect_app.sources import HotFolder, open_source
from inspect_app.store import DefectStore
from tests.inspect_app.fake_line_service import FakeSlowBackend
from tests.inspect_app.test_service_http import HotFolderCard

RATE = 8000


def _image(folder: Path, stem: str, value: int = 90) -> Path:
    path = folder / f"{stem}.png"
    frame = np.full((32, 32, 3), value, np.uint8)
    frame[0, 0] ^= 1  # a uniform frame is a FAULT (a dark camera)
    cv2.imwrite(str(path), frame)
    return path


def _vibration(folder: Path, stem: str) -> Path:
    path = folder / f"{stem}.npy"
    t = np.arange(RATE // 4) / RATE
    np.save(path, (0.1 * np.sin(2 * np.pi * 120 * t)).astype(np.float32))
    return path


def _quick(folder: Path, **kw: object) -> HotFolder:
    opts: dict[str, object] = {"settle_s": 0.0, "poll_s": 0.02, "idle_stop_s": 0.3}
    opts.update(kw)
    return HotFolder(folder, **opts)


def test_parts_come_in_arrival_order_with_both_sensors_and_skip_logged_ids(
    tmp_path: Path,
) -> None:
    for stem in ("b", "a", "c"):
        _image(tmp_path, stem)
        _vibration(tmp_path, stem)
        time.sleep(0.01)
    (tmp_path / "notes.txt").write_text("not a part")
    (tmp_path / "a.txt").write_text("exposure 2 ms")  # the camera's notes, not a recording
    parts = list(
        _quick(
            tmp_path, modalities=("image", "vibration"), skip_part_ids={"c"}, sample_rate_hz=RATE
        )
    )
    assert [p.part_id for p in parts] == ["a", "b"]  # stems sorted within one scan
    for p in parts:
        assert p.fault is None
        assert p.frame is not None and p.frame.shape == (32, 32, 3)
        assert p.vibration is not None and p.vibration.sample_rate_hz == RATE


def test_a_part_missing_a_sensor_file_becomes_a_fault_naming_it(tmp_path: Path) -> None:
    _image(tmp_path, "p1")
    parts = list(_quick(tmp_path, modalities=("image", "vibration"), pair_timeout_s=0.1))
    assert [p.part_id for p in parts] == ["p1"]
    assert parts[0].fault is not None
    assert "no vibration file for part p1" in parts[0].fault
    assert parts[0].frame is not None  # what did come is kept for the log's snapshot


def test_an_unreadable_file_is_a_fault_not_a_dropped_part(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    _vibration(tmp_path, "log")  # an image-only line: other sensors' files are not parts
    parts = {p.part_id: p for p in _quick(tmp_path, modalities=("image",))}
    assert set(parts) == {"broken"}
    assert parts["broken"].fault is not None and "broken.png" in parts["broken"].fault
    _vibration(tmp_path, "bad")
    (tmp_path / "bad.png").unlink(missing_ok=True)
    both = _quick(
        tmp_path,
        modalities=("image", "vibration"),
        skip_part_ids={"broken", "log"},
        pair_timeout_s=0.1,
    )
    (part,) = list(both)  # .npy without --sample-rate: unreadable, so a FAULT naming the file
    assert part.part_id == "bad" and part.fault is not None and "bad.npy" in part.fault


def test_a_file_still_growing_is_not_read_until_it_settles(tmp_path: Path) -> None:
    folder = HotFolder(tmp_path, modalities=("image",), settle_s=0.5)
    path = tmp_path / "slow.png"
    path.write_bytes(b"\x89PNG")  # the camera software has written the first bytes only
    folder._scan(0.0)
    arrival = folder._pending["slow"]
    assert not folder._ready(arrival, 0.3)
    with path.open("ab") as f:
        f.write(b"\x00" * 100)
    folder._scan(0.3)
    assert not folder._ready(arrival, 0.7)  # grew at 0.3: not yet 0.5 s steady
    assert folder._ready(arrival, 0.81)


def test_stop_ends_the_wait_for_new_files(tmp_path: Path) -> None:
    folder = HotFolder(tmp_path, modalities=("image",), poll_s=0.05)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(p.part_id for p in folder))
    reader.start()
    time.sleep(0.4)  # an idle line: nothing arrives for a while
    _image(tmp_path, "first")
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    folder.stop()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert seen == ["first"]
    assert folder.last_wait_s >= 0.35  # the pipeline takes this idle time out of the latency


def test_open_source_refuses_what_a_hot_folder_cannot_be(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a folder"):
        open_source(str(tmp_path / "missing"), watch=True, modalities=("image",))
    with pytest.raises(ValueError, match="holds its own"):
        open_source(str(tmp_path), vibration="acc.wav", watch=True, modalities=("image",))
    with pytest.raises(ValueError, match="each vibration file is one part's"):
        open_source(str(tmp_path), window_s=1.0, watch=True, modalities=("image",))
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "labels.csv").write_text("image,label\n")
    with pytest.raises(ValueError, match="a dataset to replay; drop --watch"):
        open_source(str(dataset), watch=True, modalities=("image",))
    with pytest.raises(ValueError, match=r"--recursive .* needs --watch"):
        open_source(str(tmp_path), recursive=True)
    with pytest.raises(ValueError, match="settle time -1"):
        open_source(str(tmp_path), watch=True, modalities=("image",), settle_s=-1)
    assert isinstance(open_source(str(tmp_path), watch=True, modalities=("image",)), HotFolder)


def test_serve_watch_logs_each_arriving_part_and_stops_on_request(tmp_path: Path) -> None:
    """The service end to end on a hot folder (a fake backend: the model is not the point):
    parts written while it runs are logged, a corrupt one as FAULT, and stop() returns."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    db = f"sqlite:///{tmp_path / 'log.db'}"
    options = ServeOptions(
        home=tmp_path, line="press", source=str(incoming), db_url=db, http=None, watch=True
    )
    loaded = LoadedLine(FakeSlowBackend(0.0), HotFolderCard(), tmp_path, "v1", None)
    service = InspectionService.build(options, loaded=loaded, preprocess=list)
    outcome: list[object] = []
    runner = threading.Thread(
        target=lambda: outcome.append(service.run(install_signals=False)), daemon=True
    )
    runner.start()
    try:
        _image(incoming, "p1")
        _image(incoming, "p2", 91)  # the same image twice would be a frozen camera (FAULT)
        (incoming / "p3.png").write_bytes(b"not a png at all")
        with DefectStore.open(db) as store:
            deadline = time.monotonic() + 30
            while len(store.inspections(line="press")) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            rows = {r.part_id: r for r in store.inspections(line="press")}
    finally:
        service.stop()
        runner.join(timeout=10)
    assert not runner.is_alive()  # stop() ended the wait for the next file
    assert set(rows) == {"p1", "p2", "p3"}
    assert rows["p3"].verdict == "FAULT"
    assert {rows["p1"].verdict, rows["p2"].verdict} <= {"PASS", "FAIL"}


def test_it_remembers_only_the_files_still_there(tmp_path: Path) -> None:
    """A service that runs for months while a cron job clears the folder keeps a bounded set
    of handled names; a file deleted before it settled is not a part."""
    folder = HotFolder(tmp_path, modalities=("image",), skip_part_ids={"old1", "old2"})
    _image(tmp_path, "old1")
    _image(tmp_path, "new")
    folder._scan(0.0)
    assert folder.skip == {"old1"}  # old2's file is gone: no need to remember it
    assert set(folder._pending) == {"new"}
    (tmp_path / "new.png").unlink()
    folder._scan(0.1)
    assert folder._pending == {}


def test_each_pending_file_is_stat_ed_once_a_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file found by listing the folder is not looked at again in the same poll: a large
    drop of parts on a network share costs one stat each per poll, not two."""
    _image(tmp_path, "a")
    folder = HotFolder(tmp_path, modalities=("image",))
    looked_at: list[str] = []
    stat = Path.stat

    def counting(path: Path, *args: object, **kwargs: object) -> object:
        looked_at.append(path.name)
        return stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "stat", counting)
    folder._scan(0.0)  # lists the folder: the new file is stat-ed there (its DirEntry)
    assert set(folder._pending) == {"a"}
    assert "a.png" not in looked_at
    folder._scan(0.2)  # nothing came: only the pending file is looked at
    assert looked_at.count("a.png") == 1


def test_serve_watch_with_idle_exit_inspects_a_folder_once_and_returns(tmp_path: Path) -> None:
    incoming = tmp_path / "photos"
    incoming.mkdir()
    for stem in ("a", "b", "c"):
        _image(incoming, stem)
    db = f"sqlite:///{tmp_path / 'log.db'}"
    options = ServeOptions(
        home=tmp_path,
        line="press",
        source=str(incoming),
        db_url=db,
        http=None,
        watch=True,
        settle_s=0.0,
        idle_exit_s=0.5,
    )
    loaded = LoadedLine(FakeSlowBackend(0.0), HotFolderCard(), tmp_path, "v1", None)
    outcome = InspectionService.build(options, loaded=loaded, preprocess=list).run(
        install_signals=False
    )
    assert outcome.error is None
    with DefectStore.open(db) as store:
        assert {r.part_id for r in store.inspections(line="press")} == {"a", "b", "c"}


def test_a_file_left_empty_becomes_a_fault_after_the_pairing_timeout(tmp_path: Path) -> None:
    (tmp_path / "blank.png").write_bytes(b"")  # the camera software crashed after creating it
    (part,) = list(_quick(tmp_path, modalities=("image",), pair_timeout_s=0.1))
    assert part.part_id == "blank" and part.fault is not None and "blank.png" in part.fault


def test_serve_refuses_hot_folder_options_without_watch(capsys: pytest.CaptureFixture[str]) -> None:
    from inspect_app.cli import main

    assert main(["serve", "--line", "x", "--source", "y", "--idle-exit", "3"]) == 2
    assert "need --watch" in capsys.readouterr().err
    assert main(["serve", "--line", "x", "--source", "y", "--recursive"]) == 2
    assert "--recursive need --watch" in capsys.readouterr().err
    assert main(["console", "--line", "x", "--source", "y", "--recursive"]) == 2
    assert "--recursive needs --watch" in capsys.readouterr().err


def test_subfolders_are_watched_with_recursive_and_ids_keep_their_path(tmp_path: Path) -> None:
    """A camera that writes each day into its own folder: the same name on two days is two
    parts; a hidden folder (a writer's scratch) and, without `recursive`, every subfolder are
    not looked into; a folder made while the line runs (the next day) is found."""
    for day in ("2026-12-05", "2026-12-06", ".partial"):
        (tmp_path / day).mkdir()
        _image(tmp_path / day, "P1")
    _image(tmp_path, "P2")
    _image(tmp_path / "2026-12-05", "P0")
    assert [p.part_id for p in _quick(tmp_path)] == ["P2"]  # as before: the folder only
    folder = _quick(tmp_path, recursive=True, idle_stop_s=1.0, skip_part_ids={"2026-12-05/P0"})
    parts = iter(folder)
    first = [next(parts).part_id for _ in range(3)]
    assert sorted(first) == ["2026-12-05/P1", "2026-12-06/P1", "P2"]
    (tmp_path / "2026-12-07" / "cam2").mkdir(parents=True)
    _image(tmp_path / "2026-12-07" / "cam2", "P1")
    late = next(parts)
    assert late.part_id == "2026-12-07/cam2/P1" and late.fault is None
    assert late.meta["source"].endswith("/2026-12-07/cam2/P1.png")
    assert list(parts) == []


def test_sample_rate_reaches_a_camera_sources_npy_vibration(tmp_path: Path) -> None:
    """`--sample-rate` is the rate of a .npy recording paired with a camera too."""
    from inspect_app.sources import CameraLine

    npy = _vibration(tmp_path, "acc")
    clip = str(tmp_path / "clip.mp4")
    line = open_source(clip, vibration=str(npy), window_s=0.1, sample_rate_hz=RATE)
    assert isinstance(line, CameraLine) and line.vibration is not None
    assert line.vibration.recording.sample_rate_hz == RATE
    line.close()
    window_s = line.vibration.recording.duration_s  # the whole recording: one window
    with pytest.raises(ValueError, match=r"the recording holds one .* window; looped, every part"):
        open_source(clip, vibration=str(npy), window_s=window_s, sample_rate_hz=RATE)


def test_the_backlog_of_unread_parts_shows_in_metrics(tmp_path: Path) -> None:
    """A line that falls behind its camera shows as a growing backlog in /metrics."""
    from inspect_app.runtime import RuntimeStats, prometheus_text

    for stem in ("a", "b", "c"):
        _image(tmp_path, stem)
    folder = HotFolder(tmp_path, modalities=("image",))
    stats = RuntimeStats()
    stats.watch_backlog(folder.backlog)
    assert stats.snapshot().source_backlog == 0
    folder._scan(0.0)
    assert stats.snapshot().source_backlog == 3
    assert 'inspect_source_backlog_parts{line="press"} 3' in prometheus_text(
        stats.snapshot(), "press"
    )
    assert "inspect_source_backlog_parts" not in prometheus_text(RuntimeStats().snapshot(), "x")
