"""sd_notify messages reach a real Unix datagram socket, and nothing happens outside systemd."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspect_app.systemd_notify import SystemdNotifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield sock, path
    sock.close()


def test_ready_and_watchdog_reach_the_socket(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}
    )
    assert notifier.enabled
    assert notifier.watchdog_interval_s == pytest.approx(5.0)
    assert notifier.ready(status="inspecting line-a")
    assert sock.recv(256) == b"READY=1\nSTATUS=inspecting line-a"
    assert notifier.watchdog_due()
    assert notifier.watchdog()
    assert sock.recv(256) == b"WATCHDOG=1"
    assert not notifier.watchdog_due()  # just pinged; next one is due in 5 s
    assert notifier.stopping()
    assert sock.recv(256) == b"STOPPING=1"


def test_outside_systemd_every_call_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_environment({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert not notifier.watchdog_due()


def test_watchdog_meant_for_another_process_is_ignored(
    notify_socket: tuple[socket.socket, str],
) -> None:
    _, path = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert SystemdNotifier.from_environment(env).watchdog_interval_s is None


def test_a_vanished_socket_never_raises(tmp_path: Path) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert notifier.ready() is False


def test_abstract_socket_name_gets_a_leading_nul() -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "@/org/freedesktop/systemd1/x"})
    assert notifier.address == b"\0/org/freedesktop/systemd1/x"
