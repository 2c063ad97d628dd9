"""The service's HTTP endpoints: loopback by default, GET only, Prometheus text, JSON rows."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inspect_app.http_server import DEFAULT_HOST, HttpContext, HttpEndpoints, parse_bind
from inspect_app.runtime import RuntimeStats
from inspect_app.service import InspectionService, LoadedLine, ServeOptions
from tests.inspect_app.fake_line_service import FakeSlowBackend


@dataclass
class HotFolderCard:
    """What the service needs of a line card for an image-only hot-folder line (or, with
    other `modalities` and `adapt`, any line a test serves around a fake backend)."""

    classes: tuple[str, ...] = ("dent",)
    threshold: float = 0.5
    modalities: tuple[str, ...] = ("image",)
    image_bits: int | None = None
    roi: list[int] | None = None
    adapt: dict[str, object] = field(default_factory=dict)


def fake_line(folder: Path, version: str) -> LoadedLine:
    return LoadedLine(FakeSlowBackend(0.0), HotFolderCard(), folder, version, None)


def hot_folder_service(
    home: Path, loaded: LoadedLine, loader: Callable[[], LoadedLine] | None = None
) -> InspectionService:
    """The real service on an empty hot folder of line `press`, HTTP on a free port, around a
    fake backend."""
    (home / "incoming").mkdir()
    options = ServeOptions(
        home=home,
        line="press",
        source=str(home / "incoming"),
        db_url=f"sqlite:///{home / 'log.db'}",
        http="127.0.0.1:0",
        watch=True,
    )
    return InspectionService.build(options, loaded=loaded, preprocess=list, loader=loader)


@pytest.fixture
def endpoints() -> Iterator[tuple[HttpEndpoints, RuntimeStats, list[int]]]:
    stats = RuntimeStats()
    stats.record_part_started()
    stats.record_latency("model", 0.012)
    stats.record_verdict("PASS", None)
    stats.record_verdict("FAIL", "dent")
    stats.record_drop("prepare", 2)
    asked: list[int] = []

    def recent(n: int) -> list[dict[str, object]]:
        asked.append(n)
        return [{"part_id": "p1", "verdict": "FAIL"}]

    server = HttpEndpoints(
        HttpContext("line-a", stats, lambda: (True, "inspecting"), recent), port=0
    )
    server.start()
    yield server, stats, asked
    server.close()


def request(server: HttpEndpoints, method: str, path: str) -> tuple[int, str, dict[str, str]]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request(method, path, body=b"x" if method in {"POST", "PUT", "PATCH"} else None)
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    return resp.status, body, dict(resp.getheaders())


def test_binds_loopback_by_default(
    endpoints: tuple[HttpEndpoints, RuntimeStats, list[int]],
) -> None:
    server, _, _ = endpoints
    assert server.address[0] == "127.0.0.1" == DEFAULT_HOST
    options = ServeOptions(home=Path("."), line="l", source="s", db_url="sqlite://")
    assert str(options.http).startswith("127.0.0.1:")
    assert parse_bind(":9000") == ("127.0.0.1", 9000)
    assert parse_bind("0.0.0.0:8765") == ("0.0.0.0", 8765)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_bind("localhost:http")


def test_healthz_metrics_and_inspections(
    endpoints: tuple[HttpEndpoints, RuntimeStats, list[int]],
) -> None:
    server, _, asked = endpoints
    status, body, _ = request(server, "GET", "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok" and json.loads(body)["parts"] == 2
    status, body, headers = request(server, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'inspect_parts_total{line="line-a"} 2' in body
    assert 'inspect_verdicts_total{line="line-a",verdict="FAIL"} 1' in body
    assert 'inspect_dropped_total{line="line-a",queue="prepare"} 2' in body
    assert 'inspect_fault_run{line="line-a"} 0' in body
    assert (
        'inspect_stage_latency_seconds{line="line-a",stage="model",quantile="0.95"} 0.012' in body
    )
    status, body, _ = request(server, "GET", "/api/inspections?limit=7")
    assert status == 200 and json.loads(body)["inspections"][0]["part_id"] == "p1" and asked == [7]
    assert request(server, "GET", "/api/inspections?limit=0")[0] == 400
    assert request(server, "GET", "/api/inspections?limit=abc")[0] == 400
    assert request(server, "GET", "/nothing")[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"])
def test_nothing_can_write(
    endpoints: tuple[HttpEndpoints, RuntimeStats, list[int]], method: str
) -> None:
    server, _, asked = endpoints
    status, _, headers = request(server, method, "/api/inspections?limit=1")
    assert status == 405 and headers["Allow"] == "GET"
    assert asked == []


def test_unhealthy_is_503() -> None:
    server = HttpEndpoints(
        HttpContext("l", RuntimeStats(), lambda: (False, "defect log locked"), lambda n: []), port=0
    )
    server.start()
    try:
        status, body, _ = request(server, "GET", "/healthz")
        assert status == 503 and "locked" in body
    finally:
        server.close()


def test_healthz_says_when_the_line_was_switched_and_a_restart_would_use_it(
    tmp_path: Path,
) -> None:
    """`inspect-app lines --activate` changes the line's active version on disk; the running
    service keeps its model (still healthy) and /healthz names the version a restart loads."""
    root = tmp_path / "lines" / "press"
    for version in ("v1", "v2"):
        (root / version).mkdir(parents=True)
    (root / "ACTIVE").write_text("v1\n")
    service = hot_folder_service(tmp_path, fake_line(root / "v1", "v1"))
    assert service.http is not None
    service.http.start()
    try:
        code, body, _ = request(service.http, "GET", "/healthz")
        health = json.loads(body)
        assert code == 200 and health["model_version"] == health["active_version"] == "v1"
        assert "restart_to_use" not in health
        (root / "ACTIVE").write_text("v2\n")  # as `inspect-app lines --activate v2` leaves it
        code, body, _ = request(service.http, "GET", "/healthz")
        health = json.loads(body)
        assert code == 200 and health["status"] == "ok"
        assert health["model_version"] == "v1" and health["restart_to_use"] == "v2"
        (root / "ACTIVE").unlink()
        assert json.loads(request(service.http, "GET", "/healthz")[1])["active_version"] is None
    finally:
        service.http.close()
        service.store.close()


def test_a_reload_that_cannot_load_or_finds_the_same_version_keeps_the_line_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGHUP's reload (`request_reload`): a version that will not load, or the version that
    runs already, leaves the running model alone; a new one shows in /healthz."""
    answers: list[object] = [OSError("weights.safetensors: disk error"), "v1", "v2"]

    def loader() -> LoadedLine:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return fake_line(tmp_path, str(answer))

    service = hot_folder_service(tmp_path, fake_line(tmp_path, "v1"), loader)
    runner = threading.Thread(target=lambda: service.run(install_signals=False), daemon=True)
    runner.start()
    try:
        for _ in range(3):
            before = len(answers)
            service.request_reload()
            deadline = time.monotonic() + 10
            while len(answers) == before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # the swap, when there is one, finishes
        assert service.http is not None
        health = json.loads(request(service.http, "GET", "/healthz")[1])
        assert health["model_version"] == "v2" and health["status"] == "ok"
        metrics = request(service.http, "GET", "/metrics")[1]
        assert 'inspect_model_info{line="press",version="v2"} 1' in metrics
    finally:
        service.stop()
        runner.join(timeout=10)
    err = capsys.readouterr().err
    assert "cannot load its active version (weights.safetensors: disk error); v1 goes on" in err
    assert "v1 is still its active version; v1 goes on" in err
    assert "inspecting with v2 (was v1)" in err
    assert service.loaded.version == "v2" and not runner.is_alive()


def test_a_reload_whose_source_will_not_open_again_ends_the_run_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A version with another region of interest needs the source opened anew: the old
    pipeline has drained and the source cannot be opened for the new version (the folder or
    camera is gone): the service ends with the reason, for systemd to restart it, instead of
    carrying on without a source."""

    def cropped() -> LoadedLine:
        card = HotFolderCard(roi=[0, 0, 32, 32])
        return LoadedLine(FakeSlowBackend(0.0), card, tmp_path, "v2", None)

    service = hot_folder_service(tmp_path, fake_line(tmp_path, "v1"), cropped)
    outcome = []
    runner = threading.Thread(
        target=lambda: outcome.append(service.run(install_signals=False)), daemon=True
    )
    runner.start()
    time.sleep(0.3)
    (tmp_path / "incoming").rmdir()
    service.request_reload()
    runner.join(timeout=20)
    assert not runner.is_alive()
    (result,) = outcome
    assert result.error is not None and result.error.startswith("reload to v2: hot folder")
    assert "is not a folder" in result.error
    assert "v2 has another region of interest: opening the source again" in capsys.readouterr().err


def test_the_service_watches_for_drift_and_its_endpoints_say_it(tmp_path: Path) -> None:
    """The drift monitor watches the running pipeline's committed parts, its reference read
    from the log; /healthz carries its state (still 200: a warning) and /metrics its gauges."""
    from inspect_app.decision import Verdict
    from inspect_app.pipeline import InspectedPart
    from sensors.sample import Sample

    service = hot_folder_service(tmp_path, fake_line(tmp_path / "v1", "v1"))
    assert service.http is not None and service.drift is not None
    assert service.drift in service.pipeline.watchers  # off the reject signal's path
    service.http.start()
    try:
        code, body, _ = request(service.http, "GET", "/healthz")
        assert code == 200 and "drift" not in json.loads(body)  # no part seen yet
        for i in range(700):  # 500 alike, then every part far above them
            score = float(i % 10) if i < 500 else 100.0
            part = InspectedPart(
                Sample(part_id=f"p{i}"), Verdict("PASS", defect_score=score), model_version="v1"
            )
            service.drift.handle(part)
        code, body, _ = request(service.http, "GET", "/healthz")
        health = json.loads(body)
        assert code == 200 and health["status"] == "ok"
        assert health["drift"]["drifted"] is True and health["drift"]["recent_parts"] == 200
        _, text, _ = request(service.http, "GET", "/metrics")
        assert 'inspect_drift{line="press"} 1' in text
    finally:
        service.http.close()
        service.store.close()
