"""The real daemon against faults on the reply path: a poison message, a full disk, a hung relay,
a relay refusing our credentials, and the exit codes of `run --once` with replies left pending."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.smtp import AuthResult

from tests.integration.daemon import (
    Daemons,
    awayd,
    header,
    mailbox,
    message,
    state_path,
    to_one,
    write_config,
)
from tests.integration.dovecot import DOMAIN, Dovecot, free_port
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration

EX_TEMPFAIL = 75


def decisions(config: Path) -> list[tuple[int, str]]:
    """(uid, reason) of every recorded decision, read without writing."""
    uri = state_path(config).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        rows = conn.execute("SELECT uid, reason FROM decisions ORDER BY uid").fetchall()
    finally:
        conn.close()
    return [(int(u), str(r)) for u, r in rows]


def test_a_latin1_byte_labelled_utf8_neither_stops_the_folder_nor_loses_the_next_message(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    d = daemons.start(config)
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "=?utf-8?q?caf=E9?="),
                    "bob@example.net")
    dovecot.deliver(mail_user, message("carol@example.com", mail_user, "Lunch?"),
                    "carol@example.com")
    d.wait_for("reply.sent", recipient="carol@example.com")
    d.wait_for("reply.sent", recipient="bob@example.net")
    assert d.stop() == 0

    (to_bob,) = to_one(smtp_sink.messages, "bob@example.net")
    assert header(to_bob.content, "Subject") == "Auto: café"
    assert [reason for _uid, reason in decisions(config)] == ["reply", "reply"]
    assert "Traceback" not in d.log_text()


# -- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB tmpfs for the state file, mounted for this test only."""
    if os.geteuid() != 0:
        if os.environ.get("AWAYD_REQUIRE_DOVECOT") == "1":
            pytest.fail("AWAYD_REQUIRE_DOVECOT=1 but mounting a tmpfs needs root", pytrace=False)
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "volume"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
                   check=True, capture_output=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def fill(volume: Path) -> Path:
    """Fill `volume` to the last byte; returns the filler file (delete it to free the space)."""
    filler = volume / "filler"
    with filler.open("ab", buffering=0) as out:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
    return filler


class FillingSink(SmtpSink):
    """A sink that runs `before_accept` (once) when a message's data has arrived, then says 250."""

    def __init__(self, before_accept: Callable[[], None]) -> None:
        super().__init__()
        self._before_accept: Callable[[], None] | None = before_accept

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        hook, self._before_accept = self._before_accept, None
        if hook is not None:
            hook()
        return await super().handle_DATA(server, session, envelope)


def test_a_full_disk_after_the_250_sends_one_copy_and_completes_once_space_is_freed(
    dovecot: Dovecot, mail_user: str, daemons: Daemons, tmp_path: Path, small_volume: Path
) -> None:
    fillers: list[Path] = []
    sink = FillingSink(lambda: fillers.append(fill(small_volume)))
    sink.start()
    try:
        config = write_config(tmp_path / "awayd.yaml", sink=sink,  # type: ignore[arg-type]
                              mailboxes=[mailbox("alice", mail_user, dovecot)],
                              state=small_volume / "state.db")
        d = daemons.start(config)
        d.wait_watching()
        # bob's reply is recorded, then the disk fills while the relay takes it: its mark fails
        dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
        assert len(sink.wait_for(1, timeout=40)) == 1
        # carol's message cannot even be recorded while the disk is full
        dovecot.deliver(mail_user, message("carol@example.com", mail_user), "carol@example.com")
        time.sleep(3.0)  # several outbox cycles (retry_base 0.5 s): a resend would happen now
        assert [m.rcpt_tos for m in sink.messages] == [("bob@example.net",)]
        assert d.events("reply.sent", recipient="carol@example.com") == []
        d.wait_for("store.write_failed")

        fillers[0].unlink()
        d.wait_for("reply.sent", recipient="carol@example.com")
        d.wait_for("outbox.recorded_late")
        assert d.stop() == 0
    finally:
        sink.stop()
    assert len(to_one(sink.messages, "bob@example.net")) == 1
    assert len(to_one(sink.messages, "carol@example.com")) == 1
    assert d.events("imap.failed") == []
    assert d.events("store.recovered")
    assert [e["level"] for e in d.events("store.write_failed")] == ["error"]
    assert [reason for _uid, reason in decisions(config)] == ["reply", "reply"]
    assert outbox_states(config) == ["sent", "sent"]


def test_start_on_a_full_disk_exits_75_not_78(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, tmp_path: Path, small_volume: Path
) -> None:
    config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink,
                          mailboxes=[mailbox("alice", mail_user, dovecot)],
                          state=small_volume / "state.db")
    fill(small_volume)
    done = awayd("run", "--once", config=config)
    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert str(small_volume / "state.db") in done.stderr
    assert "full" in done.stderr


# -- a relay that never answers ---------------------------------------------------------------


@pytest.fixture
def hung_relay() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts SMTP connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_hung_relay_delays_neither_other_mailboxes_nor_other_relays(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    hung_relay: int,
) -> None:
    stuck_user = dovecot.add_user(f"u-{uuid.uuid4().hex[:12]}@{DOMAIN}")
    hung = {"host": "127.0.0.1", "port": hung_relay, "security": "none", "timeout": "30s"}
    config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink, mailboxes=[
        mailbox("stuck", stuck_user, dovecot, smtp=hung),
        mailbox("alice", mail_user, dovecot)])
    d = daemons.start(config)
    d.wait_watching(folders=2)
    for n in range(5):
        sender = f"s{n}@example.net"
        dovecot.deliver(stuck_user, message(sender, stuck_user), sender)
    for n in range(10):
        sender = f"a{n}@example.com"
        dovecot.deliver(mail_user, message(sender, mail_user), sender)

    d.wait_for("reply.sent", count=10, mailbox="alice")
    d.wait_for("message.processed", count=5, mailbox="stuck")
    assert d.events("reply.sent", mailbox="stuck") == []
    assert d.stop() == 0
    assert len(smtp_sink.messages) == 10


# -- a relay refusing our login ---------------------------------------------------------------


class AuthSink(SmtpSink):
    """A sink offering AUTH PLAIN and LOGIN that refuses every login (535) until `accept`."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self.accept = False
        super().__init__(authenticator=self._authenticate, auth_require_tls=False)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      data: Any) -> AuthResult:
        self.attempts.append(mechanism)
        return AuthResult(success=self.accept, handled=False)


@pytest.fixture
def auth_sink() -> Iterator[AuthSink]:
    sink = AuthSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def auth_config(tmp_path: Path, dovecot: Dovecot, user: str, sink: SmtpSink, metrics: str,
                **smtp: str) -> Path:
    config = write_config(tmp_path / "awayd.yaml", sink=sink, metrics=metrics,
                          mailboxes=[mailbox("alice", user, dovecot)])
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    secret = tmp_path / "smtp.pass"
    secret.write_text("not-the-password\n", encoding="utf-8")
    data["smtp"].update({"username": "awayd", "password_file": str(secret), **smtp})
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return config


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode("utf-8")


def test_a_refused_login_is_tried_once_with_one_mechanism_alerts_and_keeps_the_reply_queued(
    dovecot: Dovecot, mail_user: str, auth_sink: AuthSink, daemons: Daemons, tmp_path: Path
) -> None:
    port = free_port()
    config = auth_config(tmp_path, dovecot, mail_user, auth_sink, f"127.0.0.1:{port}")
    relay = f"{auth_sink.host}:{auth_sink.port}"
    d = daemons.start(config)
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    d.wait_until(lambda: bool(auth_sink.attempts), "a login")
    time.sleep(3.0)  # several outbox cycles (retry_base 0.5 s): no retry may come now
    assert auth_sink.attempts == ["PLAIN"]
    (failed,) = d.wait_for("smtp.auth_failed")
    assert failed["level"] == "error"
    assert failed["relay"] == relay
    status, body = http_get(f"http://127.0.0.1:{port}/healthz")
    assert status == 503
    assert relay in body
    _, exposition = http_get(f"http://127.0.0.1:{port}/metrics")
    assert f'awayd_smtp_auth_failures_total{{relay="{relay}"}} 1.0' in exposition
    assert f'awayd_relay_up{{relay="{relay}"}} 0.0' in exposition
    assert d.stop() == 0
    assert outbox_states(config) == ["pending"]
    assert auth_sink.messages == []

    # run --once with the wrong password: the reply stays pending, and it says so (75)
    once = daemons.start(config, once=True)
    assert once.wait_exit(timeout=60) == EX_TEMPFAIL, once.log_text()
    assert auth_sink.attempts == ["PLAIN", "PLAIN"]
    assert outbox_states(config) == ["pending"]


def test_after_the_hold_one_login_goes_through_and_the_queued_reply_is_sent(
    dovecot: Dovecot, mail_user: str, auth_sink: AuthSink, daemons: Daemons, tmp_path: Path
) -> None:
    port = free_port()
    config = auth_config(tmp_path, dovecot, mail_user, auth_sink, f"127.0.0.1:{port}",
                         auth_retry="1s")
    d = daemons.start(config)
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    d.wait_for("smtp.auth_failed")
    auth_sink.accept = True  # the operator fixed the account on the relay
    d.wait_for("reply.sent", recipient="bob@example.net")
    d.wait_for("smtp.relay_up")
    status, _body = http_get(f"http://127.0.0.1:{port}/healthz")
    assert status == 200
    assert d.stop() == 0
    assert auth_sink.attempts == ["PLAIN", "PLAIN"]
    assert [m.rcpt_tos for m in auth_sink.messages] == [("bob@example.net",)]


# -- run --once exit codes --------------------------------------------------------------------


def test_run_once_exits_75_while_the_relay_is_down_and_0_once_the_reply_went_out(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    down = {"host": "127.0.0.1", "port": free_port(), "security": "none", "timeout": "5s"}
    up = write_config(tmp_path / "up.yaml", sink=smtp_sink, state=tmp_path / "state.db",
                      mailboxes=[mailbox("alice", mail_user, dovecot)])
    broken = write_config(tmp_path / "down.yaml", sink=smtp_sink, state=tmp_path / "state.db",
                          mailboxes=[mailbox("alice", mail_user, dovecot, smtp=down)])
    first = awayd("run", "--once", config=up)  # first start: sets the checkpoint
    assert first.returncode == 0, first.stderr
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")

    done = awayd("run", "--once", config=broken)
    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert "pending" in done.stderr
    assert smtp_sink.messages == []

    done = awayd("run", "--once", config=up)
    assert done.returncode == 0, done.stderr
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("bob@example.net",)]


def outbox_states(config: Path) -> list[str]:
    uri = state_path(config).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        rows = conn.execute("SELECT state FROM outbox ORDER BY id").fetchall()
    finally:
        conn.close()
    return [str(s) for (s,) in rows]


def test_a_refused_imap_login_is_logged_at_error(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-password\n", encoding="utf-8")
    config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink,
                          mailboxes=[mailbox("alice", mail_user, dovecot, password_file=wrong)])
    d = daemons.start(config)
    (failed,) = d.wait_for("imap.failed", count=1)[:1]
    assert failed["level"] == "error"
    assert failed["transient"] is False
    assert d.stop() == 0
