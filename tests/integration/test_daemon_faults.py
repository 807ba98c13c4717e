"""The real daemon under faults: IMAP restarts and outages, SMTP 4xx/5xx, crashes, bad state files."""

from __future__ import annotations

import json
import os
import pwd
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from awayd.adapters.store_sqlite import SqliteStore
from awayd.pipeline import FAULT_ENV
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
from tests.integration.dovecot import DOMAIN, MAIL_USER, Dovecot, free_port
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration

EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75


def outbox_rows(config: Path) -> list[tuple[str, str, int]]:
    """(recipient, state, attempts) of every outbox row, read without writing."""
    uri = state_path(config).resolve().as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute("SELECT recipient, state, attempts FROM outbox ORDER BY id").fetchall()
    conn.close()
    return [(str(r), str(s), int(a)) for r, s, a in rows]


def report(config: Path) -> dict[str, object]:
    done = awayd("report", "--json", config=config)
    assert done.returncode == 0, done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    return data


def drop_into_maildir(dovecot: Dovecot, user: str, raw: bytes) -> None:
    """Store a message the way a delivery agent does while the IMAP server is down."""
    new = dovecot.dir / "home" / user / "Maildir" / "new"
    path = new / f"{time.time_ns()}.awayd-test-{uuid.uuid4().hex[:8]}.localhost"
    path.write_bytes(raw)
    entry = pwd.getpwnam(MAIL_USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)


@pytest.mark.parametrize("idle", [True, False], ids=["idle", "poll"])
def test_imap_server_restart_reconnects_and_misses_nothing(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    idle: bool,
) -> None:
    config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink,
                          mailboxes=[mailbox("alice", mail_user, dovecot, idle=idle)])
    d = daemons.start(config)
    d.wait_watching()
    dovecot.deliver(mail_user, message("before@example.net", mail_user), "before@example.net")
    d.wait_for("reply.sent")

    try:
        dovecot.stop()
        d.wait_for("imap.failed")
        raw = message("during@example.net", mail_user)
        drop_into_maildir(dovecot, mail_user, b"Return-Path: <during@example.net>\r\n"
                          + f"Delivered-To: {mail_user}\r\n".encode() + raw)
    finally:
        dovecot.start()
    dovecot.deliver(mail_user, message("after@example.net", mail_user), "after@example.net")

    d.wait_for("imap.reconnected")
    d.wait_for("reply.sent", count=3)
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == [
        "after@example.net", "before@example.net", "during@example.net"]
    assert [e["reason"] for e in d.events("message.processed")] == ["reply"] * 3
    assert d.stop() == 0


def test_smtp_4xx_is_retried_from_the_outbox_until_it_goes_through(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    d = daemons.start(config)
    d.wait_watching()
    smtp_sink.fail_next(2, 451)
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")

    (sent,) = d.wait_for("reply.sent")
    deferred = d.events("smtp.send_deferred")
    assert len(deferred) == 2
    assert all("451" in e["error"] for e in deferred)
    (mail,) = smtp_sink.messages
    assert mail.rcpt_tos == ("bob@example.net",)
    assert header(mail.content, "Message-ID") == sent["message_id"]
    assert d.stop() == 0
    assert outbox_rows(config) == [("bob@example.net", "sent", 3)]


def test_smtp_5xx_is_recorded_failed_once_and_releases_the_sender(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    d = daemons.start(config)
    d.wait_watching()
    smtp_sink.fail_always(550)
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    (failed,) = d.wait_for("smtp.send_failed")
    assert "550" in failed["error"]
    assert d.stop() == 0

    (box,) = report(config)["mailboxes"]  # type: ignore[misc]
    assert box["outbox"] == {"sent": 0, "failed": 1, "dropped": 0, "pending": 0}
    # No retry storm: outbox passes (at start and at the end of --once) leave it alone.
    again = daemons.start(config, once=True)
    assert again.wait_exit() == 0, again.log_text()
    assert [e for e in again.events() if str(e.get("event", "")).startswith("smtp.")] == []
    assert outbox_rows(config) == [("bob@example.net", "failed", 1)]
    assert smtp_sink.messages == []

    # The permanent failure released the reservation: bob's next message is answered.
    smtp_sink.reset()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "Hello?"), "bob@example.net")
    third = daemons.start(config, once=True)
    assert third.wait_exit() == 0, third.log_text()
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("bob@example.net",)]


def test_crash_between_outbox_write_and_send_sends_exactly_once_after_restart(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    crashing = daemons.start(config, {FAULT_ENV: "after-record"})
    crashing.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    assert crashing.wait_exit() == -signal.SIGKILL
    assert crashing.events("message.processed", reason="reply")
    assert smtp_sink.messages == []

    d = daemons.start(config)
    d.wait_for("reply.sent", recipient="bob@example.net")
    # A later message as a barrier: once it is answered, a duplicate would have gone first.
    dovecot.deliver(mail_user, message("carol@example.com", mail_user), "carol@example.com")
    d.wait_for("reply.sent", recipient="carol@example.com")
    assert d.stop() == 0

    assert len(to_one(smtp_sink.messages, "bob@example.net")) == 1
    assert len(smtp_sink.messages) == 2
    assert [e["sender"] for e in d.events("message.processed")] == ["carol@example.com"]
    assert outbox_rows(config) == [("bob@example.net", "sent", 1), ("carol@example.com", "sent", 1)]


def test_crash_between_send_and_commit_resends_once_with_the_same_message_id(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    """DESIGN §7: the only duplicate window is between the server's 250 and the commit."""
    crashing = daemons.start(config, {FAULT_ENV: "after-send"})
    crashing.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    assert crashing.wait_exit() == -signal.SIGKILL
    assert len(smtp_sink.messages) == 1

    d = daemons.start(config)
    d.wait_for("reply.sent", recipient="bob@example.net")
    dovecot.deliver(mail_user, message("carol@example.com", mail_user), "carol@example.com")
    d.wait_for("reply.sent", recipient="carol@example.com")
    assert d.stop() == 0

    to_bob = to_one(smtp_sink.messages, "bob@example.net")
    assert len(to_bob) == 2
    assert len({header(m.content, "Message-ID") for m in to_bob}) == 1
    assert to_bob[0].content == to_bob[1].content
    assert len(smtp_sink.messages) == 3
    assert outbox_rows(config) == [("bob@example.net", "sent", 1), ("carol@example.com", "sent", 1)]


def test_a_mailbox_with_a_wrong_password_retries_while_the_other_is_answered(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-password\n", encoding="utf-8")
    other = dovecot.add_user(f"u-{uuid.uuid4().hex[:12]}@{DOMAIN}")
    config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink, mailboxes=[
        mailbox("broken", other, dovecot, password_file=wrong),
        mailbox("alice", mail_user, dovecot)])
    d = daemons.start(config)
    d.wait_for("checkpoint.created", mailbox="alice")
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    dovecot.deliver(other, message("bob@example.net", other), "bob@example.net")
    d.wait_for("reply.sent", mailbox="alice")

    failures = d.wait_for("imap.failed", count=3, mailbox="broken")
    assert [e["failures"] for e in failures[:3]] == [1, 2, 3]
    assert all("login" in e["error"] and "not-the-password" not in e["error"] for e in failures)
    assert len(d.events("imap.retry_wait", mailbox="broken")) >= 2
    assert d.events("checkpoint.created", mailbox="broken") == []
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("bob@example.net",)]
    assert d.stop() == 0


def test_run_once_with_the_imap_server_unreachable_exits_69(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink,
                          mailboxes=[mailbox("alice", mail_user, dovecot, port=free_port())])
    done = awayd("run", "--once", config=config)
    assert done.returncode == EX_UNAVAILABLE, done.stderr
    assert "alice/INBOX" in done.stderr


def test_daemon_keeps_retrying_while_the_imap_server_is_down_and_answers_once_it_is_up(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    try:
        dovecot.stop()
        d = daemons.start(config)
        d.wait_for("imap.failed", count=2)
        assert d.events("imap.retry_wait")
        assert d.proc.poll() is None
    finally:
        dovecot.start()
    d.wait_for("imap.reconnected")
    d.wait_watching()  # the first successful connection sets the checkpoint
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    d.wait_for("reply.sent")
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("bob@example.net",)]
    assert d.stop() == 0


def test_state_path_that_is_a_directory_fails_run_once_naming_the_file(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, config: Path
) -> None:
    state_path(config).mkdir()
    done = awayd("run", "--once", config=config)
    assert done.returncode not in (0, EX_UNAVAILABLE), done.stderr
    assert str(state_path(config)) in done.stderr
    assert "Traceback" not in done.stderr


def test_locked_state_database_fails_run_once_naming_the_file(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, config: Path
) -> None:
    path = state_path(config)
    SqliteStore.open(path).close()  # a real, migrated store
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        done = awayd("run", "--once", config=config)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert str(path) in done.stderr
    assert "lock" in done.stderr
    assert "Traceback" not in done.stderr
