"""The service's read-only HTTP endpoints (stdlib `http.server`), bound to loopback by default.

    GET /healthz                  200 {"status": "ok", ...} or 503 when the line is not healthy;
                                  the model version inspecting and the line's active one
    GET /metrics                  Prometheus text: parts, verdicts, latency, queue depth, drops
    GET /api/inspections?limit=N  the newest N inspections of the line as JSON (1 <= N <= 1000)

Any other method is answered 405: nothing here can write.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from inspect_app.drift import DriftState
from inspect_app.runtime import RuntimeStats, prometheus_label, prometheus_text

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_LIMIT = 1000


@dataclass
class HttpContext:
    """What the endpoints read. `health()` returns (healthy, detail); `recent(n)` JSON-able rows."""

    line: str
    stats: RuntimeStats
    health: Callable[[], tuple[bool, str]]
    recent: Callable[[int], list[dict[str, Any]]]
    # the model version inspecting, and the line's active version on disk now (None when it
    # cannot be read): they differ once `inspect-app lines --activate` switched the line and
    # the service has not been restarted
    model_version: str = ""
    active_version: Callable[[], str | None] | None = None
    # the drift monitor's state now (inspect_app.drift), None until it has seen a part
    drift: Callable[[], DriftState | None] | None = None


def drift_json(state: DriftState) -> dict[str, Any]:
    """/healthz's "drift": what the drift monitor says now."""
    return {
        "drifted": state.drifted,
        "direction": state.direction,
        "model_version": state.version,
        "reference_parts": state.reference,
        "recent_parts": state.recent,
        "recent_scores_higher": state.higher,  # 0.5 while nothing changed
        "p_value": state.p_value,
        "rejected_reference": state.rejected_reference,
        "rejected_recent": state.rejected_recent,
    }


def drift_metrics(state: DriftState, line: str) -> str:
    """The drift monitor's gauges in Prometheus text (appended to /metrics)."""
    label = f'line="{prometheus_label(line)}"'
    lines = [
        "# HELP inspect_drift 1 while the line's defect scores have drifted from its reference.",
        "# TYPE inspect_drift gauge",
        f"inspect_drift{{{label}}} {int(state.drifted)}",
        "# HELP inspect_drift_higher How likely a recent part scores higher than one of the "
        "model version's first parts (0.5 while nothing changed).",
        "# TYPE inspect_drift_higher gauge",
    ]
    if state.higher is not None:
        lines.append(f"inspect_drift_higher{{{label}}} {state.higher:.6g}")
    return "\n".join(lines) + "\n"


def parse_bind(spec: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (loopback) or `PORT` → (host, port)."""
    host, _, port_text = spec.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError as exc:
        msg = f"--http {spec!r} is not HOST:PORT (e.g. 127.0.0.1:8765)"
        raise ValueError(msg) from exc
    if not 0 <= port < 65536:
        msg = f"--http {spec!r}: port must be 0-65535"
        raise ValueError(msg)
    return host, port


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "inspect-app"
    protocol_version = "HTTP/1.1"

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; every method but GET is refused.
        if name.startswith("do_") and name != "do_GET":
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"read-only endpoint: only GET is allowed\n",
            "text/plain; charset=utf-8",
            {"Allow": "GET"},
        )

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        ctx = self.server.context
        if url.path == "/healthz":
            healthy, detail = ctx.health()
            snap = ctx.stats.snapshot()
            body: dict[str, Any] = {
                "status": "ok" if healthy else "unhealthy",
                "detail": detail,
                "line": ctx.line,
                "parts": snap.parts,
                "uptime_s": round(snap.uptime_s, 3),
            }
            if ctx.model_version:
                body["model_version"] = ctx.model_version
            if ctx.active_version is not None:
                active = ctx.active_version()
                body["active_version"] = active
                if active and active != ctx.model_version:
                    body["restart_to_use"] = active  # still healthy: the old version runs
            drift = None if ctx.drift is None else ctx.drift()
            if drift is not None:  # a warning, not a failure: the line still inspects
                body["drift"] = drift_json(drift)
            code = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
            self._json(code, body)
        elif url.path == "/metrics":
            text = prometheus_text(ctx.stats.snapshot(), ctx.line, ctx.model_version)
            drift = None if ctx.drift is None else ctx.drift()
            if drift is not None:
                text += drift_metrics(drift, ctx.line)
            self._send(HTTPStatus.OK, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif url.path == "/api/inspections":
            self._inspections(parse_qs(url.query))
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {url.path}"})

    def _inspections(self, query: dict[str, list[str]]) -> None:
        raw = query.get("limit", ["50"])[-1]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            self._json(
                HTTPStatus.BAD_REQUEST, {"error": f"limit must be 1..{MAX_LIMIT}, got {raw!r}"}
            )
            return
        try:
            rows = self.server.context.recent(int(raw))
        except Exception as exc:  # the log may be locked; say so instead of dropping the socket
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            return
        self._json(HTTPStatus.OK, {"line": self.server.context.line, "inspections": rows})

    def _json(self, code: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body, default=str).encode()
        self._send(code, data, "application/json")

    def _send(
        self, code: HTTPStatus, data: bytes, ctype: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # one line per scrape would drown the service's own log


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: HttpContext) -> None:
        self.context = context
        super().__init__(address, _Handler)


class HttpEndpoints:
    """The HTTP server on its own thread. `address` is the bound (host, port)."""

    def __init__(self, context: HttpContext, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
        try:
            self._server = _Server((host, port), context)
        except OSError as exc:
            msg = f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}"
            raise OSError(msg) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="http",
            daemon=True,
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
