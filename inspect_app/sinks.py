"""Reject outputs: what acts on a verdict at the line (a command hook, a PLC coil over Modbus TCP).

Every sink has `name`, `handle(part)` and `close()`. A sink error is counted in the stats and
logged; it never stops inspection or the defect log (see `Pipeline._deliver`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspect_app.pipeline import InspectedPart

REJECT_VERDICTS = frozenset({"FAIL", "FAULT"})


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
    ) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            msg = "the reject command is empty; give a program and its arguments"
            raise ValueError(msg)
        self.line = line
        self.verdicts = verdicts
        self.timeout_s = timeout_s

    def handle(self, part: InspectedPart) -> None:
        v = part.verdict
        if v.verdict not in self.verdicts:
            return
        env = dict(os.environ)
        env.update(
            INSPECT_LINE=self.line,
            INSPECT_PART_ID=part.sample.part_id,
            INSPECT_VERDICT=v.verdict,
            INSPECT_DEFECT_CLASS=v.defect_class or "",
            INSPECT_DEFECT_SCORE="" if v.defect_score is None else f"{v.defect_score:.6f}",
            INSPECT_FAULT_REASON=v.fault_reason or "",
        )
        done = subprocess.run(
            self.argv, env=env, timeout=self.timeout_s, capture_output=True, check=False
        )
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip()[-300:]
            msg = (
                f"reject command {self.argv[0]!r} exited {done.returncode} on part "
                f"{part.sample.part_id}: {err}"
            )
            raise RuntimeError(msg)

    def close(self) -> None:
        return None


class ModbusCoilSink:
    """Writes the reject coil over Modbus TCP: True for a rejected part, False for a good one.

    The gate's PLC reads the coil per part. The connection is reopened when it drops.
    """

    name = "modbus"

    def __init__(self, target: ModbusTarget, timeout_s: float = 1.0, client: Any = None) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._client = client
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        if self._client is None:
            from pymodbus.client import ModbusTcpClient  # only plants with a PLC need pymodbus

            self._client = ModbusTcpClient(
                self.target.host, port=self.target.port, timeout=self.timeout_s, retries=1
            )
        if not self._client.connected and not self._client.connect():
            msg = f"cannot reach the Modbus server at {self.target.host}:{self.target.port}"
            raise ConnectionError(msg)
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
