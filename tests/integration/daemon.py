"""Run the real `awayd` as a subprocess for tests: config files, JSON log events, signals.

A test writes a config for a Dovecot user and the SMTP sink (`write_config`), starts
`python -m awayd run --config ...` (`Daemons.start`), delivers mail and waits for log events
(`Daemon.wait_for`) or for replies at the sink. stdout and stderr go to files, never pipes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

from tests.integration.dovecot import Dovecot
from tests.integration.smtpsink import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
AWAYD = (sys.executable, "-m", "awayd")
#: Long enough for IMAP backoff after a server restart; tests never assert on durations.
WAIT = 40.0
STOP_TIMEOUT = 15.0
RULE_TEXT = "Hello {{ sender.first_name or 'there' }}, I am away until Monday. (marker-v1)"


def rule(name: str = "away", text: str = RULE_TEXT, **extra: Any) -> dict[str, Any]:
    return {"name": name, "text": text, **extra}


def mailbox(
    name: str,
    user: str,
    dovecot: Dovecot,
    *,
    rules: Sequence[Mapping[str, Any]] | None = None,
    password_file: Path | None = None,
    port: int | None = None,
    folders: Sequence[str] = ("INBOX",),
    idle: bool = True,
    poll_interval: str = "0.1s",
    **extra: Any,
) -> dict[str, Any]:
    """A mailbox section for `user` on `dovecot` (plain IMAP on loopback)."""
    return {
        "name": name,
        "address": user,
        "timezone": "Europe/Paris",
        "language": "en",
        "imap": {
            "host": dovecot.host,
            "port": port if port is not None else dovecot.imap_port,
            "security": "none",
            "username": user,
            "password_file": str(password_file or dovecot.password_file),
            "folders": list(folders),
            "idle": idle,
            "poll_interval": poll_interval,
            "timeout": "10s",
        },
        "rules": [dict(r) for r in (rules or [rule()])],
        **extra,
    }


def write_config(
    path: Path,
    *,
    sink: SmtpSink,
    mailboxes: Sequence[Mapping[str, Any]],
    state: Path | None = None,
    retry_base: str = "0.5s",
    metrics: str | None = None,
    state_url: str | None = None,
) -> Path:
    """Write a config YAML to `path` (state next to it unless given, or on PostgreSQL at
    `state_url`); return `path`."""
    where = {"url": state_url} if state_url else {"path": str(state or path.with_suffix(".db"))}
    data: dict[str, Any] = {
        "state": {**where, "retry_base": retry_base},
        "smtp": {"host": sink.host, "port": sink.port, "security": "none", "timeout": "10s"},
        "mailboxes": [dict(m) for m in mailboxes],
    }
    if metrics is not None:
        data["metrics"] = {"listen": metrics}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def state_path(config: Path) -> Path:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    return Path(data["state"]["path"])


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWAYD_", "NOTIFY_SOCKET"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def awayd(*args: str, config: Path, env: Mapping[str, str] | None = None,
          timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run one `awayd` command to completion (its output is small: pipes are fine here)."""
    # --config belongs to the innermost command: `report --config C`, `suppress add --config C`
    depth = 2 if args[:1] in (("suppress",), ("state",)) else 1
    argv = [*AWAYD, *args[:depth], "--config", str(config), *args[depth:]]
    return subprocess.run(argv, cwd=ROOT, env=_env(env), capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def parse_events(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of `text` as dicts; anything else (a traceback) is left out."""
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    return events


def _matches(event: Mapping[str, Any], name: str, fields: Mapping[str, Any]) -> bool:
    return event.get("event") == name and all(event.get(k) == v for k, v in fields.items())


class Daemon:
    """One `awayd run` process; its log is `log_path` (JSON lines)."""

    def __init__(self, config: Path, log_path: Path, env: Mapping[str, str] | None = None,
                 once: bool = False) -> None:
        self.config = config
        self.log_path = log_path
        argv = [*AWAYD, "run", "--config", str(config), *(["--once"] if once else [])]
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=_env(env), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self, name: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        found = parse_events(self.log_text())
        return found if name is None else [e for e in found if _matches(e, name, fields)]

    def wait_for(self, name: str, count: int = 1, timeout: float = WAIT,
                 **fields: Any) -> list[dict[str, Any]]:
        """Wait until `count` events `name` with `fields` were logged; return them.

        Fails at once if the process exits first, with its log in the message.
        """
        self.wait_until(lambda: len(self.events(name, **fields)) >= count,
                        f"{count} x {name} {fields}", timeout)
        return self.events(name, **fields)

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"awayd exited ({self.proc.returncode}) before {what}:\n"
                                     f"{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:g} s:\n{self.log_text()[-4000:]}")
            time.sleep(0.05)

    def wait_watching(self, folders: int = 1) -> None:
        """First start: wait until `folders` checkpoints exist (later mail is not backlog)."""
        self.wait_for("checkpoint.created", count=folders)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait; SIGKILL (and fail) if it does not exit within `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"awayd ignored SIGTERM for {timeout:g} s:\n"
                                     f"{self.log_text()[-4000:]}") from None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Daemons:
    """Starts daemons with numbered log files under `directory`; kills leftovers on exit."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Daemon] = []

    def start(self, config: Path, env: Mapping[str, str] | None = None, *,
              once: bool = False) -> Daemon:
        log = self.directory / f"awayd-{len(self.started) + 1}.log"
        daemon = Daemon(config, log, env, once=once)
        self.started.append(daemon)
        return daemon

    def all_events(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        """Events `name` logged by every daemon started so far, in start order."""
        return [e for d in self.started for e in d.events(name, **fields)]

    def __enter__(self) -> Daemons:
        return self

    def __exit__(self, *exc: object) -> None:
        for daemon in self.started:
            daemon.kill()


# -- mail ------------------------------------------------------------------------------------

_counter = iter(range(1, 1 << 30))


def message(sender: str, to: str, subject: str = "Lunch?", *, name: str = "Bob Martin",
            headers: Mapping[str, str] | None = None, body: str = "Are you free on Friday?",
            message_id: str | None = None) -> bytes:
    """A plain message from `name <sender>` to `to`; extra `headers` go before Subject."""
    n = next(_counter)
    mid = message_id or f"<t{n}.{time.time_ns()}@{sender.rpartition('@')[2]}>"
    lines = [f"From: {name} <{sender}>", f"To: {to}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines += [f"Subject: {subject}", f"Message-ID: {mid}",
              f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}",
              "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode("utf-8")


def header(raw: bytes, name: str) -> str | None:
    """The first `name:` header of `raw` (unfolded), or None."""
    value = message_from_bytes(raw, policy=policy.default).get(name)
    return None if value is None else str(value)


def flags(dovecot: Dovecot, user: str, folder: str = "INBOX") -> dict[int, frozenset[bytes]]:
    """Every message's flags read through EXAMINE; \\Recent (per session) is left out."""
    with dovecot.imap_client(user) as client:
        client.select_folder(folder, readonly=True)
        found = client.fetch(client.search(["ALL"]), ["FLAGS"])
    return {uid: frozenset(f for f in item[b"FLAGS"] if f != b"\\Recent")
            for uid, item in found.items()}


def body_text(raw: bytes) -> str:
    """The decoded text/plain part of a reply."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None, raw[:500]
    return str(part.get_content())


def to_one(mails: Sequence[Any], address: str) -> list[Any]:
    """The sink's messages whose only recipient is `address`."""
    return [m for m in mails if m.rcpt_tos == (address,)]
