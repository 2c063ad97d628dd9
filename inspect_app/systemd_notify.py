"""A tiny sd_notify(3): tell systemd the service is ready and still alive, with no dependency.

systemd passes `$NOTIFY_SOCKET` to a unit with `Type=notify`; the service sends datagrams such
as `READY=1` or `WATCHDOG=1` to it. Outside systemd (a terminal, a test, Windows) the variable
is absent and every call is a quiet no-op, so the service can call these unconditionally.

    notifier = SystemdNotifier.from_environment()
    notifier.ready()                      # once the pipeline runs
    if notifier.watchdog_due():           # in the main loop
        notifier.watchdog()
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"


def _socket_address(raw: str) -> str | bytes:
    """`@name` is a Linux abstract socket (leading NUL byte); anything else is a path."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


@dataclass
class SystemdNotifier:
    """Sends sd_notify messages to `address`; does nothing when `address` is None."""

    address: str | bytes | None
    watchdog_interval_s: float | None = None
    _last_ping: float = field(default=0.0, repr=False)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> SystemdNotifier:
        """Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` as systemd sets them for this process.

        The ping interval is half of `WatchdogSec`, as sd_watchdog_enabled(3) advises, and is
        only set when `$WATCHDOG_PID` (if present) names this process.
        """
        env = os.environ if environ is None else environ
        raw = env.get(NOTIFY_SOCKET_ENV, "")
        address = _socket_address(raw) if raw else None
        interval: float | None = None
        usec = env.get(WATCHDOG_USEC_ENV, "")
        pid = env.get(WATCHDOG_PID_ENV, "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            interval = int(usec) / 1e6 / 2
        return cls(address=address, watchdog_interval_s=interval)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Sends one datagram; True when it was sent, False outside systemd or on a socket error.

        A failed notification must never stop inspection, so errors are swallowed here: systemd
        notices a silent service through the watchdog anyway.
        """
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """`READY=1`: the unit counts as started (Type=notify); optional human status line."""
        message = "READY=1" if status is None else f"READY=1\nSTATUS={status}"
        return self.notify(message)

    def status(self, text: str) -> bool:
        """`STATUS=...`: shown by `systemctl status`."""
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        """`STOPPING=1`: a clean shutdown has begun."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """`WATCHDOG=1`: proof of life; systemd restarts the unit when it stops coming."""
        self._last_ping = time.monotonic()
        return self.notify("WATCHDOG=1")

    def watchdog_due(self) -> bool:
        """True when the watchdog is on and half its period has passed since the last ping."""
        if self.address is None or self.watchdog_interval_s is None:
            return False
        return time.monotonic() - self._last_ping >= self.watchdog_interval_s
