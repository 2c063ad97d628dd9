"""Reject outputs: the command hook, the alarm on a run of rejects, and the Modbus TCP coil
against a local pymodbus server."""

from __future__ import annotations

import socket
import socketserver
import struct
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inspect_app.decision import Verdict, fault
from inspect_app.pipeline import InspectedPart
from inspect_app.sinks import (
    AuditSampler,
    CommandHook,
    ModbusCoilSink,
    ModbusTarget,
    RejectRunAlarm,
)
from sensors.sample import Sample


def inspected(part_id: str, verdict: Verdict) -> InspectedPart:
    return InspectedPart(sample=Sample(part_id=part_id), verdict=verdict)


def test_command_hook_runs_for_rejects_with_the_part_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "rejects.txt"
    script = (
        "import os; open(os.environ['OUT'], 'a').write("
        "os.environ['INSPECT_PART_ID'] + ' ' + os.environ['INSPECT_VERDICT'] + ' ' + "
        "os.environ['INSPECT_DEFECT_CLASS'] + '\\n')"
    )
    hook = CommandHook([sys.executable, "-c", script], line="l1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OUT", str(out))
        hook.handle(inspected("a", Verdict("PASS", defect_score=0.1)))
        hook.handle(inspected("b", Verdict("FAIL", defect_class="dent", defect_score=0.9)))
        hook.handle(inspected("c", fault("cam.png: truncated")))
    assert out.read_text().splitlines() == ["b FAIL dent", "c FAULT "]


def test_failing_command_raises_naming_it() -> None:
    hook = CommandHook([sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(RuntimeError, match="exited 3 on part x"):
        hook.handle(inspected("x", Verdict("FAIL")))
    with pytest.raises(ValueError, match="empty"):
        CommandHook("")


def test_modbus_target_parsing() -> None:
    assert ModbusTarget.parse("10.0.0.9:1502:16:3") == ModbusTarget("10.0.0.9", 1502, 16, 3)
    assert ModbusTarget.parse("plc") == ModbusTarget("plc", 502, 0, 1)
    for bad in ("", "h:x", "h:1:2:3:4", "h:70000"):
        with pytest.raises(ValueError, match="Modbus target"):
            ModbusTarget.parse(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakePlcHandler(socketserver.BaseRequestHandler):
    """A fake PLC: answers Modbus TCP "write single coil" (function 5) and records the coils."""

    def handle(self) -> None:
        coils: dict[tuple[int, int], bool] = self.server.coils  # type: ignore[attr-defined]
        while True:
            header = self.request.recv(7)  # MBAP: transaction, protocol, length, unit
            if len(header) < 7:
                return
            _tid, _pid, length, unit = struct.unpack(">HHHB", header)
            pdu = self.request.recv(length - 1)
            function, address, value = struct.unpack(">BHH", pdu[:5])
            if function != 5:
                reply = struct.pack(">BB", function | 0x80, 1)  # illegal function
            else:
                coils[(unit, address)] = value == 0xFF00
                reply = pdu[:5]
            self.request.sendall(header[:4] + struct.pack(">HB", len(reply) + 1, unit) + reply)


@pytest.fixture
def fake_plc() -> Iterator[tuple[int, dict[tuple[int, int], bool]]]:
    """A fake Modbus TCP server on 127.0.0.1 standing in for the reject gate's PLC."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), FakePlcHandler)
    server.daemon_threads = True
    server.coils = {}  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield int(server.server_address[1]), server.coils  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def test_modbus_coil_follows_the_verdict(
    fake_plc: tuple[int, dict[tuple[int, int], bool]],
) -> None:
    port, coils = fake_plc
    sink = ModbusCoilSink(ModbusTarget("127.0.0.1", port, coil=5, unit=2))

    def coil() -> bool:
        return coils[(2, 5)]

    sink.handle(inspected("a", Verdict("FAIL", defect_class="dent")))
    assert coil() is True
    sink.handle(inspected("b", Verdict("PASS")))
    assert coil() is False
    sink.handle(inspected("c", fault("vibration truncated")))
    assert coil() is True
    sink.close()


def test_modbus_unreachable_is_an_error_naming_the_server() -> None:
    sink = ModbusCoilSink(ModbusTarget("127.0.0.1", _free_port()), timeout_s=0.2)
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1"):
        sink.handle(inspected("a", Verdict("FAIL")))


class UnreachablePlc:
    """A Modbus client whose server does not answer: each connect waits out its timeout."""

    connected = False

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.connects = 0
        self.up = False
        self.coils: list[bool] = []

    def connect(self) -> bool:
        self.connects += 1
        if self.up:
            self.connected = True
            return True
        time.sleep(self.timeout_s)
        return False

    def write_coil(self, coil: int, value: bool, device_id: int) -> Any:
        self.coils.append(value)
        return types.SimpleNamespace(isError=lambda: False)

    def close(self) -> None:
        self.connected = False


def test_an_unreachable_plc_fails_fast_and_is_tried_again_later() -> None:
    """While the PLC does not answer, a part's coil write fails at once (counted, the line goes
    on) instead of waiting out a connect timeout per part; a connection is tried again after a
    doubling backoff, and the coil follows the verdicts once the PLC is back."""
    plc = UnreachablePlc(timeout_s=0.2)
    now = [100.0]
    sink = ModbusCoilSink(ModbusTarget("10.0.0.9"), client=plc, clock=lambda: now[0])
    t0 = time.monotonic()
    for i in range(20):
        with pytest.raises(ConnectionError, match=r"10\.0\.0\.9:502; trying again in"):
            sink.handle(inspected(f"p{i}", Verdict("FAIL")))
    assert plc.connects == 1 and time.monotonic() - t0 < 1.0  # one timeout, not twenty
    now[0] += 0.6  # past the first backoff (0.5 s): one more try, then 1 s
    with pytest.raises(ConnectionError, match=r"trying again in 1\.0 s"):
        sink.handle(inspected("q", Verdict("FAIL")))
    assert plc.connects == 2
    plc.up = True
    now[0] += 1.1
    sink.handle(inspected("r", Verdict("FAIL")))
    sink.handle(inspected("s", Verdict("PASS")))
    assert plc.connects == 3 and plc.coils == [True, False]


def test_an_alarm_is_raised_once_per_run_of_rejected_parts(tmp_path: Path) -> None:
    """`serve --alarm-after 3`: three rejects in a row raise it once, with the run in the
    command's environment; more rejects do not raise it again, a good part re-arms it."""
    out = tmp_path / "alarms.txt"
    script = (
        "import os; e = os.environ; open(e['OUT'], 'a').write(' '.join(e[k] for k in ("
        "'INSPECT_LINE', 'INSPECT_ALARM_RUN', 'INSPECT_ALARM_FAILS', 'INSPECT_ALARM_FAULTS', "
        "'INSPECT_ALARM_CLASS', 'INSPECT_ALARM_PARTS')) + '|' + e['INSPECT_FAULT_REASON'] + '\\n')"
    )
    alarm = RejectRunAlarm([sys.executable, "-c", script], run=3, line="press-3")
    dent, chip = Verdict("FAIL", defect_class="dent"), Verdict("FAIL", defect_class="chip")
    good = Verdict("PASS", defect_score=0.1)
    parts = [
        ("a", dent), ("b", good),  # one reject: the gate's business
        ("c", dent), ("d", fault("cam: no frame")), ("e", dent),  # three in a row: alarm
        ("f", chip), ("g", dent),  # the run goes on: not again
        ("h", good), ("i", chip), ("j", chip), ("k", chip),  # re-armed, and again
    ]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OUT", str(out))
        for part_id, verdict in parts:
            alarm.handle(inspected(part_id, verdict))
    assert out.read_text().splitlines() == [
        "press-3 3 2 1 dent c,d,e|cam: no frame",
        "press-3 3 3 0 chip i,j,k|",
    ]
    assert alarm.fired == 2


def test_alarm_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        RejectRunAlarm("stack-light red", run=1)
    with pytest.raises(ValueError, match="empty"):
        RejectRunAlarm("", run=3)
    failing = RejectRunAlarm([sys.executable, "-c", "import sys; sys.exit(4)"], run=2)
    failing.handle(inspected("a", Verdict("FAIL")))
    with pytest.raises(RuntimeError, match=r"alarm command .* exited 4 at part b"):
        failing.handle(inspected("b", Verdict("FAIL")))


def test_serve_wants_both_alarm_options(capsys: pytest.CaptureFixture[str]) -> None:
    from inspect_app.cli import main

    argv = ["serve", "--line", "l", "--source", "x", "--http", "off"]
    assert main([*argv, "--alarm-after", "5"]) == 2
    assert "go together" in capsys.readouterr().err
    assert main([*argv, "--alarm-command", "true", "--alarm-after", "1"]) == 2


def test_one_passed_part_in_n_is_picked_at_random_for_a_check(tmp_path: Path) -> None:
    """`serve --audit-every 4`: about one passed part in 4 is marked for its snapshot and the
    audit command runs for it (INSPECT_AUDIT=1); rejects are never picked. At random: a
    4-cavity mould's parts are all checked, not one cavity's."""
    out = tmp_path / "audits.txt"
    script = (
        "import os; open(os.environ['OUT'], 'a').write("
        "os.environ['INSPECT_PART_ID'] + ' ' + os.environ['INSPECT_AUDIT'] + '\\n')"
    )
    sampler = AuditSampler(4, [sys.executable, "-c", script], line="l1", seed=0)
    parts = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OUT", str(out))
        for i in range(40):
            parts.append(inspected(f"p{i}", Verdict("PASS", defect_score=0.1)))
            parts.append(inspected(f"f{i}", Verdict("FAIL", defect_class="dent")))
        parts.append(inspected("x", fault("cam.png: truncated")))
        for part in parts:
            sampler.handle(part)
    picked = [p.sample.part_id for p in parts if p.audit]
    assert picked and all(p.startswith("p") for p in picked)
    assert out.read_text().splitlines() == [f"{p} 1" for p in picked]
    assert (sampler.passed, sampler.picked) == (40, len(picked))

    many = AuditSampler(4, seed=1)  # no command: picked (snapshots kept), nothing run
    cavities = []
    for i in range(4000):
        part = inspected(f"q{i}", Verdict("PASS"))
        many.handle(part)
        if part.audit:
            cavities.append(i % 4)
    assert 900 < len(cavities) < 1100  # one in 4
    assert {c: cavities.count(c) > 150 for c in range(4)} == dict.fromkeys(range(4), True)
    with pytest.raises(ValueError, match="N of 1 or more"):
        AuditSampler(0)
    with pytest.raises(ValueError, match="audit command is empty"):
        AuditSampler(2, "")


def test_serve_checks_its_audit_options(capsys: pytest.CaptureFixture[str]) -> None:
    from inspect_app.cli import main

    argv = ["serve", "--line", "l", "--source", "x", "--http", "off"]
    assert main([*argv, "--audit-command", "divert"]) == 2
    assert "give both" in capsys.readouterr().err
    assert main([*argv, "--audit-every", "0"]) == 2
    assert "--audit-every must be positive" in capsys.readouterr().err
    assert main([*argv, "--audit-every", "50", "--no-snapshots"]) == 2
    assert "drop --no-snapshots" in capsys.readouterr().err
    assert main(["console", "--line", "l", "--audit-every", "0"]) == 2
    assert "--audit-every must be positive" in capsys.readouterr().err


def test_picked_parts_are_counted_in_metrics() -> None:
    """The shift can see how many passed parts went for a check: `inspect_audits_total`."""
    from inspect_app.runtime import RuntimeStats, prometheus_text

    stats = RuntimeStats()
    stats.record_verdict("PASS", None, audit=True)
    stats.record_verdict("PASS", None)
    stats.record_verdict("FAIL", "dent")
    assert stats.snapshot().audits == 1
    assert 'inspect_audits_total{line="press"} 1' in prometheus_text(stats.snapshot(), "press")
