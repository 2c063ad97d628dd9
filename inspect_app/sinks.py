"""Reject outputs: what acts on a verdict at the line (a command hook, a PLC coil over Modbus TCP,
an alarm when part after part is rejected).

Every sink has `name`, `handle(part)` and `close()`. A sink error is counted in the stats and
logged; it never stops inspection or the defect log. The sinks run in the pipeline's own signal
stage, each part as soon as it is decided (`Pipeline._run_signal`).
"""

from __future__ import annotations

import logging
import os
import random
import shlex
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspect_app.pipeline import InspectedPart

log = logging.getLogger(__name__)

REJECT_VERDICTS = frozenset({"FAIL", "FAULT"})
RECONNECT_MIN_S = 0.5  # the PLC's connection is tried again after this, doubling
RECONNECT_MAX_S = 10.0


@dataclass(frozen=True)
class ModbusTarget:
    """Where the reject coil lives: `HOST:PORT[:COIL[:UNIT]]` on the command line."""

    host: str
    port: int = 502
    coil: int = 0
    unit: int = 1

    @classmethod
    def parse(cls, spec: str) -> ModbusTarget:
        parts = spec.split(":")
        if not parts[0] or len(parts) > 4:
            msg = f"Modbus target {spec!r} is not HOST[:PORT[:COIL[:UNIT]]], e.g. 10.0.0.5:502:16"
            raise ValueError(msg)
        try:
            numbers = [int(p) for p in parts[1:]]
        except ValueError as exc:
            msg = f"Modbus target {spec!r}: PORT, COIL and UNIT must be integers"
            raise ValueError(msg) from exc
        target = cls(parts[0], *numbers)
        if (
            not 0 < target.port < 65536
            or not 0 <= target.coil < 65536
            or not 0 <= target.unit < 248
        ):
            msg = f"Modbus target {spec!r}: port 1-65535, coil 0-65535, unit 0-247 expected"
            raise ValueError(msg)
        return target


class CommandHook:
    """Runs a command for each rejected part (FAIL / FAULT by default), without a shell.

    The part travels in the environment: `INSPECT_PART_ID`, `INSPECT_VERDICT`,
    `INSPECT_DEFECT_CLASS`, `INSPECT_DEFECT_SCORE`, `INSPECT_FAULT_REASON`, `INSPECT_LINE`.
    """

    name = "command"

    def __init__(
        self,
        command: str | Sequence[str],
        line: str = "",
        verdicts: frozenset[str] = REJECT_VERDICTS,
        timeout_s: float = 5.0,
        kind: str = "reject command",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            msg = f"the {kind} is empty; give a program and its arguments"
            raise ValueError(msg)
        self.line = line
        self.verdicts = verdicts
        self.timeout_s = timeout_s
        self.kind = kind
        self.extra_env = dict(extra_env or {})

    def handle(self, part: InspectedPart) -> None:
        v = part.verdict
        if v.verdict not in self.verdicts:
            return
        env = {
            "INSPECT_LINE": self.line,
            "INSPECT_PART_ID": part.sample.part_id,
            "INSPECT_VERDICT": v.verdict,
            "INSPECT_DEFECT_CLASS": v.defect_class or "",
            "INSPECT_DEFECT_SCORE": "" if v.defect_score is None else f"{v.defect_score:.6f}",
            "INSPECT_FAULT_REASON": v.fault_reason or "",
            **self.extra_env,
        }
        run_command(self.argv, env, self.timeout_s, self.kind, f"on part {part.sample.part_id}")

    def close(self) -> None:
        return None


def run_command(
    argv: Sequence[str], env: dict[str, str], timeout_s: float, kind: str, what: str
) -> None:
    """Run `argv` with `env` added to the environment, without a shell; RuntimeError naming
    the `kind` of command, the program, `what` it ran for and the end of its stderr when it
    exits non-zero."""
    done = subprocess.run(
        list(argv),
        env={**os.environ, **env},
        timeout=timeout_s,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[-300:]
        msg = f"{kind} {argv[0]!r} exited {done.returncode} {what}: {err}"
        raise RuntimeError(msg)


class AuditSampler:
    """Picks one passed part in `every`, at random, for an operator's check (`serve
    --audit-every N`).

    A line calibrated from its own log (`calibrate --from-db`) learns what passes only from
    passed parts someone checked: this is the sample. At random, not every N-th part: a fixed
    stride can follow the line's own cycle (a 4-cavity mould, a 6-spindle machine) and check
    one cavity only. The picked part's snapshot is kept like a rejected part's
    (`InspectedPart.audit`), so the console shows it for confirming good or relabelling, and
    `command`, when given, runs for it (as the reject command does, with `INSPECT_AUDIT=1`):
    the signal that diverts it to the check station.
    """

    name = "audit"

    def __init__(
        self,
        every: int,
        command: str | Sequence[str] | None = None,
        line: str = "",
        seed: int | None = None,
    ) -> None:
        if every < 1:
            msg = f"audit every N passed parts needs N of 1 or more, got {every}"
            raise ValueError(msg)
        self.every = every
        self.random = random.Random(seed)
        self.passed = 0
        self.picked = 0
        self.hook = (
            None
            if command is None
            else CommandHook(
                command,
                line=line,
                verdicts=frozenset({"PASS"}),
                kind="audit command",
                extra_env={"INSPECT_AUDIT": "1"},
            )
        )

    def handle(self, part: InspectedPart) -> None:
        if part.verdict.verdict != "PASS":
            return
        self.passed += 1
        if self.random.random() * self.every >= 1.0:
            return
        self.picked += 1
        part.audit = True
        if self.hook is not None:
            self.hook.handle(part)

    def close(self) -> None:
        return None


class RejectRunAlarm:
    """Runs a command once when `run` parts in a row are rejected (FAIL or FAULT).

    One bad part is the gate's business; part after part rejected is the line's: a broken
    tool, a drifted process, a camera gone dark, a lens covered. The command (a stack light, a
    line stop, a message to the shift lead) gets the run in its environment: `INSPECT_LINE`,
    `INSPECT_ALARM_RUN` (parts rejected in a row), `INSPECT_ALARM_FAILS` and
    `INSPECT_ALARM_FAULTS` (of them), `INSPECT_ALARM_CLASS` (the defect class most of the fails
    share, or empty), `INSPECT_ALARM_PARTS` (the run's part ids, the first and the last ten) and
    `INSPECT_FAULT_REASON` (the last fault's reason, or empty). It runs again only after a good
    part has ended the run.
    """

    name = "alarm"

    def __init__(
        self, command: str | Sequence[str], run: int, line: str = "", timeout_s: float = 5.0
    ) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            msg = "the alarm command is empty; give a program and its arguments"
            raise ValueError(msg)
        if run < 2:
            msg = f"an alarm needs a run of at least 2 rejected parts, got {run}"
            raise ValueError(msg)
        self.run = run
        self.line = line
        self.timeout_s = timeout_s
        self.fired = 0  # alarms raised
        self._parts: list[InspectedPart] = []
        self._raised = False

    def handle(self, part: InspectedPart) -> None:
        if not part.verdict.rejected:
            self._parts, self._raised = [], False
            return
        self._parts.append(part)
        if self._raised or len(self._parts) < self.run:
            return
        self._raised = True
        self.fired += 1
        verdicts = [p.verdict for p in self._parts]
        classes = Counter(v.defect_class for v in verdicts if v.verdict == "FAIL")
        common = classes.most_common(1)[0] if classes else None
        ids = [p.sample.part_id for p in self._parts]
        shown = ids if len(ids) <= 11 else [ids[0], "...", *ids[-10:]]
        faults = [v.fault_reason for v in verdicts if v.verdict == "FAULT"]
        env = {
            "INSPECT_LINE": self.line,
            "INSPECT_ALARM_RUN": str(len(self._parts)),
            "INSPECT_ALARM_FAILS": str(sum(v.verdict == "FAIL" for v in verdicts)),
            "INSPECT_ALARM_FAULTS": str(len(faults)),
            "INSPECT_ALARM_CLASS": (common[0] or "") if common else "",
            "INSPECT_ALARM_PARTS": ",".join(shown),
            "INSPECT_FAULT_REASON": (faults[-1] or "") if faults else "",
        }
        log.warning(
            "line %s: %d parts in a row rejected (%s FAIL, %s FAULT%s); running the alarm",
            self.line,
            len(self._parts),
            env["INSPECT_ALARM_FAILS"],
            env["INSPECT_ALARM_FAULTS"],
            f", mostly {env['INSPECT_ALARM_CLASS']}" if env["INSPECT_ALARM_CLASS"] else "",
        )
        run_command(self.argv, env, self.timeout_s, "alarm command", f"at part {ids[-1]}")

    def close(self) -> None:
        return None


class ModbusCoilSink:
    """Writes the reject coil over Modbus TCP: True for a rejected part, False for a good one.

    The gate's PLC reads the coil per part. The connection is reopened when it drops. While the
    PLC cannot be reached, each part's write fails at once (an error naming the server, counted
    and logged with the part) and a new connection is tried after a backoff (0.5 s doubling
    to 10 s): waiting out a connect timeout on every part would hold the whole line back, and
    the parts would then be dropped uninspected instead of inspected and logged.
    """

    name = "modbus"

    def __init__(
        self,
        target: ModbusTarget,
        timeout_s: float = 1.0,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._client = client
        self._lock = threading.Lock()
        self._clock = clock
        self._retry_at = 0.0  # no connection is tried before this time (after a failed one)
        self._backoff = RECONNECT_MIN_S

    def _connect(self) -> Any:
        if self._client is None:
            from pymodbus.client import ModbusTcpClient  # only plants with a PLC need pymodbus

            self._client = ModbusTcpClient(
                self.target.host, port=self.target.port, timeout=self.timeout_s, retries=1
            )
        if self._client.connected:
            return self._client
        where = f"the Modbus server at {self.target.host}:{self.target.port}"
        now = self._clock()
        if now < self._retry_at:
            msg = f"cannot reach {where}; trying again in {self._retry_at - now:.1f} s"
            raise ConnectionError(msg)
        if not self._client.connect():
            self._retry_at = now + self._backoff
            self._backoff = min(2 * self._backoff, RECONNECT_MAX_S)
            msg = f"cannot reach {where}; trying again in {self._retry_at - now:.1f} s"
            raise ConnectionError(msg)
        self._backoff = RECONNECT_MIN_S
        return self._client

    def handle(self, part: InspectedPart) -> None:
        value = part.verdict.rejected
        with self._lock:
            client = self._connect()
            reply = client.write_coil(self.target.coil, value, device_id=self.target.unit)
        if reply.isError():
            msg = (
                f"Modbus server {self.target.host}:{self.target.port} refused coil "
                f"{self.target.coil} = {value} for part {part.sample.part_id}: {reply}"
            )
            raise RuntimeError(msg)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
