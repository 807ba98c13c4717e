"""systemd sd_notify over $NOTIFY_SOCKET; a silent no-op outside systemd, never raises."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

__all__ = ["Notifier"]

_log = structlog.get_logger(__name__)

# A datagram to a stalled manager must not stall the daemon; systemd reads these promptly.
_SEND_TIMEOUT_S = 2.0


def _socket_address(raw: str | None) -> str | None:
    """Return the AF_UNIX address for a $NOTIFY_SOCKET value, or None when unusable."""
    if not raw:
        return None
    if raw.startswith("@"):
        # Linux abstract namespace: the leading "@" stands for a NUL byte.
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    # vsock: and relative paths are not for us (systemd itself accepts only these two forms).
    return None


class Notifier:
    """Send sd_notify state changes to the service manager.

    Every method returns True when the datagram was sent and False when notification is
    off ($NOTIFY_SOCKET unset or unusable) or the send failed; none of them raises. A failure
    is logged once, until a send succeeds again, so a watchdog loop cannot flood the log.
    The object holds no socket between calls and may be shared between threads.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        pid: int | None = None,
    ) -> None:
        """Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID from `environ`.

        Args:
            environ: the process environment; os.environ when None.
            monotonic_ns: CLOCK_MONOTONIC in nanoseconds, for RELOADING's MONOTONIC_USEC.
            pid: this process's id, compared with $WATCHDOG_PID; os.getpid() when None.
        """
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET"))
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")
        self._monotonic_ns = monotonic_ns
        self._pid = os.getpid() if pid is None else pid
        self._failing = False

    @property
    def enabled(self) -> bool:
        """True when $NOTIFY_SOCKET names a socket we can send to."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """READY=1: startup (or a reload) is complete; optionally with a STATUS= line."""
        fields = ["READY=1"]
        if status is not None:
            fields.append(_status_field(status))
        return self.send(*fields)

    def status(self, text: str) -> bool:
        """STATUS=: one line shown by `systemctl status`."""
        return self.send(_status_field(text))

    def watchdog(self) -> bool:
        """WATCHDOG=1: the keep-alive ping, due at least every watchdog_interval() / 2 seconds."""
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        """STOPPING=1: shutdown has begun."""
        return self.send("STOPPING=1")

    def reloading(self) -> bool:
        """RELOADING=1 with MONOTONIC_USEC; send ready() when the reload is done."""
        usec = self._monotonic_ns() // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC: ask for more time to start or stop (finishing in-flight sends)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")

    def watchdog_interval(self) -> float | None:
        """Return the watchdog timeout ($WATCHDOG_USEC) in seconds, or None when there is none.

        This is the deadline, not the ping period: call watchdog() at least every half of it,
        as sd_watchdog_enabled(3) advises, so a late tick still lands in time. None when
        $WATCHDOG_USEC is unset, not a positive integer, or $WATCHDOG_PID names another process.
        """
        if not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != self._pid:
                    return None
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 1_000_000

    def send(self, *fields: str) -> bool:
        """Send `fields` as one newline-joined datagram; see the class docstring for the result."""
        if self._address is None or not fields:
            return False
        payload = "\n".join(fields).encode("utf-8")
        # A socket per message, as sd_notify(3) does: nothing to close or leak, and the
        # handful of messages per minute make the cost irrelevant.
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(_SEND_TIMEOUT_S)
                sock.sendto(payload, self._address)
        except OSError as err:
            if not self._failing:
                _log.warning("notify.failed", error=str(err), message=fields[0])
            self._failing = True
            return False
        self._failing = False
        return True


def _status_field(text: str) -> str:
    # One datagram carries newline-separated assignments, so a newline would start a new one.
    return "STATUS=" + " ".join(text.splitlines())
