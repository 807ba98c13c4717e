"""The real `awayd run` and admin commands with the state on PostgreSQL, and the server going away."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.integration.daemon import Daemons, awayd, mailbox, message, write_config
from tests.integration.dovecot import Dovecot
from tests.integration.postgres import Postgres
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration


def pg_config(tmp_path: Path, user: str, dovecot: Dovecot, sink: SmtpSink, url: str,
              lease: str | None = None) -> Path:
    config = write_config(tmp_path / "awayd.yaml", sink=sink, state_url=url,
                          mailboxes=[mailbox("alice", user, dovecot)])
    if lease is not None:
        config.write_text(config.read_text().replace("  retry_base:", f"  lease: {lease}\n  retry_base:"))
    return config


def test_the_daemon_and_admin_commands_work_on_postgresql(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    pg_url: str,
) -> None:
    config = pg_config(tmp_path, mail_user, dovecot, smtp_sink, pg_url)
    checked = awayd("check", config=config)
    assert checked.returncode == 0, checked.stderr
    assert f"state {pg_url} (postgresql)" in checked.stdout.splitlines()[0]

    d = daemons.start(config)
    d.wait_watching()
    assert not (tmp_path / "awayd.db").exists()  # no SQLite file on the side
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "Lunch?"), "bob@example.net")
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "Again"), "bob@example.net")
    dovecot.deliver(mail_user, message("carol@example.com", mail_user, name="Carol"),
                    "carol@example.com")
    processed = d.wait_for("message.processed", count=3)
    d.wait_for("reply.sent", count=2)
    assert [(e["sender"], e["reason"]) for e in processed] == [
        ("bob@example.net", "reply"), ("bob@example.net", "already-replied"),
        ("carol@example.com", "reply")]
    assert sorted(m.rcpt_tos for m in smtp_sink.messages) == [
        ("bob@example.net",), ("carol@example.com",)]

    # admin commands, from any host, while the daemon runs
    report = awayd("report", "--json", config=config)
    assert report.returncode == 0, report.stderr
    [box] = json.loads(report.stdout)["mailboxes"]
    assert (box["mailbox"], box["decisions"], box["outbox"]["sent"]) == ("alice", 3, 2)
    forgot = awayd("forget", "--mailbox", "alice", "bob@example.net", config=config)
    assert forgot.returncode == 0, forgot.stderr
    assert "forgot 1 reply record(s)" in forgot.stdout
    assert awayd("suppress", "add", "@example.com", config=config).returncode == 0
    listed = awayd("suppress", "list", config=config)
    assert "@example.com" in listed.stdout
    away = awayd("away", "alice", "--until", "2099-01-01", config=config)
    assert away.returncode == 0, away.stderr + away.stdout
    status = awayd("status", "--json", config=config)
    assert json.loads(status.stdout.splitlines()[0])["absence"]["until"] == "2099-01-01"

    # forgotten: bob is answered again (by the owner-absence rule now); carol is suppressed
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "Third"), "bob@example.net")
    dovecot.deliver(mail_user, message("carol@example.com", mail_user, "Again"), "carol@example.com")
    processed = d.wait_for("message.processed", count=5)
    assert [(e["sender"], e["reason"]) for e in processed[3:]] == [
        ("bob@example.net", "reply"), ("carol@example.com", "suppressed")]
    assert processed[3]["rule"] == "owner-absence"
    d.wait_for("reply.sent", count=3)
    assert d.stop() == 0


def test_postgresql_down_stops_sending_loses_nothing_and_resumes(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    postgres: Postgres, pg_url: str,
) -> None:
    d = daemons.start(pg_config(tmp_path, mail_user, dovecot, smtp_sink, pg_url, lease="3s"))
    d.wait_watching()
    postgres.stop()
    try:
        dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
        d.wait_for("store.write_failed")
        assert smtp_sink.messages == []  # nothing decided, so nothing sent
        assert d.events("message.processed") == []
        d.wait_for("lease.renew_failed")
        d.wait_for("lease.lost", mailboxes=["alice"])  # stops before its lease runs out
    finally:
        postgres.start()
    d.wait_for("lease.store_back")
    d.wait_for("lease.acquired", count=2)
    [done] = d.wait_for("message.processed")
    assert (done["sender"], done["reason"]) == ("bob@example.net", "reply")
    d.wait_for("reply.sent")
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("bob@example.net",)]
    assert d.stop() == 0


def test_reload_and_run_once_on_postgresql(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    pg_url: str,
) -> None:
    config = pg_config(tmp_path, mail_user, dovecot, smtp_sink, pg_url, lease="3s")
    once = daemons.start(config, once=True)
    assert once.wait_exit() == 0
    assert once.events("checkpoint.created")
    d = daemons.start(config)  # the one-shot run let its lease go: no wait for expiry
    [acquired] = d.wait_for("lease.acquired")
    assert acquired["mailboxes"] == ["alice"]
    d.signal(signal.SIGHUP)
    d.wait_for("config.reloaded")
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    [done] = d.wait_for("message.processed")
    assert done["reason"] == "reply"
    d.wait_for("reply.sent")
    assert len(smtp_sink.messages) == 1
    assert d.stop() == 0
