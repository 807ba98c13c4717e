"""Tests for awayd.obs.notify against a real AF_UNIX datagram socket."""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from awayd.obs.notify import Notifier

# sockaddr_un holds 108 bytes; pytest's tmp_path can be longer than that for long test names.
_MAX_SUN_PATH = 100


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd, and its $NOTIFY_SOCKET value."""
    path = tmp_path / "notify.sock"
    short_dir: str | None = None
    if len(os.fsencode(path)) > _MAX_SUN_PATH:
        short_dir = tempfile.mkdtemp(prefix="awayd-")
        path = Path(short_dir) / "n.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()
    path.unlink(missing_ok=True)
    if short_dir is not None:
        os.rmdir(short_dir)


def _recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode("utf-8")


def test_ready_sends_ready_1(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready() is True
    assert _recv(sock) == "READY=1"


def test_ready_with_status_sends_both_in_one_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    Notifier({"NOTIFY_SOCKET": path}).ready("watching 2 mailboxes")
    assert _recv(sock) == "READY=1\nSTATUS=watching 2 mailboxes"


def test_status_watchdog_and_stopping_messages(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.status("alice: connected")
    notifier.watchdog()
    notifier.stopping()
    notifier.extend_timeout(7.5)
    assert [_recv(sock) for _ in range(4)] == [
        "STATUS=alice: connected",
        "WATCHDOG=1",
        "STOPPING=1",
        "EXTEND_TIMEOUT_USEC=7500000",
    ]


def test_status_newlines_cannot_inject_other_assignments(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    Notifier({"NOTIFY_SOCKET": path}).status("line one\nREADY=1")
    assert _recv(sock) == "STATUS=line one READY=1"


def test_reloading_carries_the_monotonic_clock_in_microseconds(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path}, monotonic_ns=lambda: 123_456_789_000)
    assert notifier.reloading() is True
    assert _recv(sock) == "RELOADING=1\nMONOTONIC_USEC=123456789"


def test_abstract_socket_names_starting_with_at_are_used() -> None:
    name = f"awayd-test-{secrets.token_hex(8)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready() is True
        assert _recv(sock) == "READY=1"
    finally:
        sock.close()


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False
    assert notifier.stopping() is False
    assert notifier.reloading() is False


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234"])
def test_unusable_notify_socket_values_disable_notification(value: str) -> None:
    assert not Notifier({"NOTIFY_SOCKET": value}).enabled


def test_a_missing_socket_file_does_not_raise(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_sending_recovers_once_the_socket_appears(tmp_path: Path) -> None:
    path = tmp_path / "late.sock"
    if len(os.fsencode(path)) > _MAX_SUN_PATH:
        pytest.skip("tmp_path too long for an AF_UNIX address")
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    assert notifier.watchdog() is False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    try:
        assert notifier.watchdog() is True
        assert _recv(sock) == "WATCHDOG=1"
    finally:
        sock.close()


def test_a_closed_listener_does_not_raise(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready() is True
    sock.close()
    os.unlink(path)
    assert notifier.status("still here") is False


def test_watchdog_interval_is_watchdog_usec_in_seconds() -> None:
    assert Notifier({"WATCHDOG_USEC": "60000000"}).watchdog_interval() == 60.0


def test_watchdog_interval_requires_our_pid_when_watchdog_pid_is_set() -> None:
    env = {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4242"}
    assert Notifier(env, pid=4242).watchdog_interval() == 60.0
    assert Notifier(env, pid=4243).watchdog_interval() is None


def test_watchdog_pid_defaults_to_this_process() -> None:
    env = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(env).watchdog_interval() == 2.0


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WATCHDOG_USEC": ""},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "-5"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "not-a-pid"},
    ],
)
def test_watchdog_interval_is_none_without_a_valid_watchdog(env: dict[str, str]) -> None:
    assert Notifier(env, pid=1).watchdog_interval() is None


def test_repeated_send_failures_are_logged_once(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})
    with capture_logs() as logs:
        for _ in range(3):
            notifier.watchdog()
    assert [entry["event"] for entry in logs] == ["notify.failed"]
    assert logs[0]["log_level"] == "warning"
