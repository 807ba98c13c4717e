"""The real daemon and its state file: one daemon per state, empty and foreign files refused."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from awayd.adapters.store_inspect import StateFile, inspect_state
from tests.integration.daemon import Daemons, awayd, message, state_path, to_one
from tests.integration.dovecot import Dovecot
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration

EX_TEMPFAIL = 75
EX_CONFIG = 78


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file()}


def test_a_second_daemon_on_the_same_state_exits_75_and_admin_commands_keep_working(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path,
    tmp_path: Path,
) -> None:
    first = daemons.start(config)
    first.wait_watching()
    second = daemons.start(config)
    assert second.wait_exit() == EX_TEMPFAIL, second.log_text()
    assert str(state_path(config)) in second.log_text()
    assert f"PID {first.pid}" in second.log_text()
    assert "Traceback" not in second.log_text()
    once = awayd("run", "--once", config=config)
    assert once.returncode == EX_TEMPFAIL, once.stderr
    assert f"PID {first.pid}" in once.stderr

    # Beside the running daemon: every admin command works.
    eml = tmp_path / "msg.eml"
    eml.write_bytes(b"Return-Path: <carol@example.com>\r\n" + message("carol@example.com", mail_user))
    for args in (("report", "--json"), ("suppress", "add", "spam@example.com"),
                 ("suppress", "list"), ("forget", "--mailbox", "alice", "carol@example.com"),
                 ("explain", "--history", "--json", str(eml)), ("check",)):
        done = awayd(*args, config=config)
        assert done.returncode == 0, (args, done.stderr)
    assert "spam@example.com" in awayd("suppress", "list", config=config).stdout

    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    first.wait_for("reply.sent", recipient="bob@example.net")
    assert first.stop() == 0
    assert len(to_one(smtp_sink.messages, "bob@example.net")) == 1


def test_a_daemon_killed_hard_does_not_block_the_next_start(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    first = daemons.start(config)
    first.wait_watching()
    first.kill()  # SIGKILL: no cleanup; the kernel drops the lock
    second = daemons.start(config)
    second.wait_for("service.started")
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    second.wait_for("reply.sent", recipient="bob@example.net")
    assert second.stop() == 0


def test_an_empty_state_file_is_refused_with_78_until_init_state_is_given(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, config: Path
) -> None:
    path = state_path(config)
    path.touch(mode=0o600)
    done = awayd("run", "--once", config=config)
    assert done.returncode == EX_CONFIG, done.stderr
    assert str(path) in done.stderr
    assert "awayd run --init-state" in done.stderr
    assert path.stat().st_size == 0

    done = awayd("run", "--once", "--init-state", config=config)
    assert done.returncode == 0, done.stderr
    assert inspect_state(path) is StateFile.AWAYD
    assert awayd("run", "--once", config=config).returncode == 0


def test_another_programs_database_is_refused_with_78_and_left_untouched(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, config: Path
) -> None:
    path = state_path(config)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE songs (title TEXT)")
    conn.commit()
    conn.close()
    before = snapshot(path.parent)
    for args in (("run", "--once"), ("run", "--once", "--init-state"), ("report", "--json")):
        done = awayd(*args, config=config)
        assert done.returncode == EX_CONFIG, (args, done.stderr)
        assert str(path) in done.stderr
        assert "not an awayd database" in done.stderr
    after = snapshot(path.parent)
    after.pop(path.name + ".lock", None)  # the daemon's lock file beside it, empty
    assert after == before


def test_report_on_a_running_daemons_state_reads_its_replies(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    d = daemons.start(config)
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    d.wait_for("reply.sent")
    done = awayd("report", "--json", config=config)
    assert done.returncode == 0, done.stderr
    (box,) = json.loads(done.stdout)["mailboxes"]
    assert box["outbox"]["sent"] == 1
    assert d.stop() == 0
