"""The demo's embedded servers on 127.0.0.1: pymap (IMAP, a subprocess) and an aiosmtpd sink."""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from awayd.errors import AwaydError

HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


class DemoError(AwaydError):
    """The demo could not set itself up (a server did not start, the daemon died)."""


def free_port() -> int:
    """A port nobody listens on right now (a server may still race us for it; callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    """Our environment minus what would make a child talk to systemd or crash on purpose."""
    drop = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "AWAYD_FAULT_INJECT", "AWAYD_CONFIG"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def stop_process(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT_S) -> int | None:
    """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class ImapServer:
    """pymap's in-memory dict backend with one user; INBOX exists from the start."""

    def __init__(self, folder: Path, user: str, password: str) -> None:
        self.folder = folder
        self.user = user
        self.password = password
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "pymap.log"

    def start(self, attempts: int = 3) -> None:
        for _ in range(attempts):
            self.port = free_port()
            if self._try_start():
                return
        raise DemoError(f"the embedded IMAP server (pymap) did not start; its log:\n{self.log_tail()}")

    def _try_start(self) -> bool:
        # -P: the current directory must not shadow modules (pymap has a `token` package)
        argv = [sys.executable, "-P", "-c", "from pymap.main import main; main()",
                "--pid-file", f"awayd-demo-pymap-{os.getpid()}",
                "--host", HOST, "--port", str(self.port), "--no-tls",
                # one argument each: a generated password may begin with "-"
                "dict", f"--demo-user={self.user}", f"--demo-password={self.password}"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=child_env(), start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._greets():
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def _greets(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0) as sock:
                return sock.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


class Mailer:
    """Stores messages in INBOX by IMAP APPEND, the way a delivery agent would."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.client = IMAPClient(HOST, port, ssl=False, timeout=10)
        self.client.login(user, password)

    def append(self, data: bytes) -> int | None:
        """APPEND to INBOX; the new UID when the server says it (UIDPLUS)."""
        answer = self.client.append("INBOX", data)
        found = _APPENDUID.search(answer if isinstance(answer, bytes) else b"")
        return int(found.group(1)) if found else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.logout()


@dataclass(frozen=True)
class Received:
    """A message the SMTP sink accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    def header(self, name: str) -> str:
        value = self.message.get(name)
        return "" if value is None else str(value)

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        if not isinstance(body, EmailMessage):
            return ""
        return str(body.get_content())


class _Handler:
    def __init__(self, on_message: Callable[[Received], None]) -> None:
        self.on_message = on_message

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        mail_from = "" if envelope.mail_from in (None, "<>") else str(envelope.mail_from)
        self.on_message(Received(mail_from, tuple(envelope.rcpt_tos), parsed))
        return "250 2.0.0 Accepted by the awayd demo sink"


class SmtpSink:
    """An SMTP server that accepts everything and hands each message to `on_message`."""

    def __init__(self, on_message: Callable[[Received], None]) -> None:
        self.on_message = on_message
        self.port = 0
        self.controller: Any = None

    def start(self, attempts: int = 3) -> None:
        from aiosmtpd.controller import Controller  # noqa: PLC0415 (a demo-only dependency)

        error: Exception | None = None
        for _ in range(attempts):
            self.port = free_port()
            controller = Controller(_Handler(self.on_message), hostname=HOST, port=self.port,
                                    server_hostname="sink.localhost")
            try:
                controller.start()
            except Exception as err:
                error = err
                continue
            self.controller = controller
            return
        raise DemoError(f"the SMTP sink (aiosmtpd) did not start: {error}")

    def stop(self) -> None:
        if self.controller is not None:
            with contextlib.suppress(Exception):
                self.controller.stop()
            self.controller = None
