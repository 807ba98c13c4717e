"""A mail host: Dovecot master-user login, defaults, include and a command listing the users."""

from __future__ import annotations

import signal
import stat
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from awayd.adapters.imap import FolderWatcher
from awayd.config.model import SecretSource
from awayd.errors import SourceError
from tests.integration.daemon import Daemons, awayd, message, rule
from tests.integration.dovecot import DOMAIN, MASTER_USER, Dovecot
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration


def master_settings(dovecot: Dovecot, user: str, *, separator: str | None = None,
                    password: Path | None = None):
    own = dovecot.imap_settings(user)
    return replace(own, password=None, master_user=MASTER_USER, master_separator=separator,
                   master_password=SecretSource(file=password or dovecot.master_password_file))


@pytest.mark.parametrize("separator", [None, "*"], ids=["plain-authzid", "login-separator"])
def test_the_master_user_reads_the_users_mailbox(dovecot: Dovecot, mail_user: str,
                                                 separator: str | None) -> None:
    """AUTHENTICATE PLAIN with authzid (offered here) and LOGIN user*master both open the
    user's own INBOX."""
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "For the user"))
    with FolderWatcher(master_settings(dovecot, mail_user, separator=separator)) as watcher:
        status = watcher.connect()
        found = watcher.fetch_new(status.uidnext - 2)
    assert [b"For the user" in m.raw for m in found] == [True]


def test_a_wrong_separator_or_master_password_is_a_permanent_login_failure(
        dovecot: Dovecot, mail_user: str, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("nope\n", encoding="utf-8")
    for settings in (master_settings(dovecot, mail_user, separator="#"),
                     master_settings(dovecot, mail_user, password=wrong)):
        with FolderWatcher(settings) as watcher, pytest.raises(SourceError) as caught:
            watcher.connect()
        assert not caught.value.transient
        assert f"through master user {MASTER_USER}" in str(caught.value)


def _users_script(path: Path, users: list[str]) -> None:
    path.write_text("#!/bin/sh\n" + "".join(f"echo {u}\n" for u in users), encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_a_host_config_answers_every_user_of_the_command_and_the_include(
        dovecot: Dovecot, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path) -> None:
    """defaults + master user + mailbox_command + include, run by the real daemon; a reload
    picks up a new user, and a failing command at reload keeps the users it gave before."""
    tag = uuid.uuid4().hex[:8]
    u1, u2, u3, u4 = (f"host-{tag}-{i}@{DOMAIN}" for i in range(1, 5))
    users = tmp_path / "users.sh"
    _users_script(users, [u1, u2])
    (tmp_path / "mailboxes.d").mkdir()
    (tmp_path / "mailboxes.d" / "extra.yaml").write_text(
        yaml.safe_dump([{"name": "four", "address": u4, "language": "fr"}]), encoding="utf-8")
    config = tmp_path / "awayd.yaml"
    config.write_text(yaml.safe_dump({
        "state": {"path": str(tmp_path / "state.db"), "retry_base": "0.5s"},
        "smtp": {"host": smtp_sink.host, "port": smtp_sink.port, "security": "none"},
        "defaults": {
            "timezone": "Europe/Paris", "language": "en",
            "imap": {"host": dovecot.host, "port": dovecot.imap_port, "security": "none",
                     "master_user": MASTER_USER,
                     "master_password_file": str(dovecot.master_password_file),
                     "idle": False, "poll_interval": "0.2s"},
            "rules": [rule()],
        },
        "include": ["mailboxes.d/*.yaml"],
        "mailbox_command": ["./users.sh"],
    }), encoding="utf-8")
    check = awayd("check", config=config)
    assert check.returncode == 0, check.stderr
    assert "1 mailbox(es) from mailboxes.d/*.yaml (1 file(s))" in check.stdout
    assert f"2 mailbox(es) from {users}" in check.stdout
    assert f"as {u1} through master user {MASTER_USER}" in check.stdout

    d = daemons.start(config)
    d.wait_watching(folders=3)
    for user in (u1, u2, u4):
        dovecot.deliver(user, message("bob@example.net", user, "Hello"), "bob@example.net")
    d.wait_for("reply.sent", count=3)
    assert {e["mailbox"] for e in d.events("reply.sent")} == {u1, u2, "four"}

    _users_script(users, [u1, u2, u3])
    d.signal(signal.SIGHUP)
    d.wait_for("config.reloaded", count=1)
    d.wait_for("checkpoint.created", count=4)
    dovecot.deliver(u3, message("bob@example.net", u3, "Hello"), "bob@example.net")
    d.wait_for("reply.sent", count=4)

    users.write_text("#!/bin/sh\nexit 3\n", encoding="utf-8")
    d.signal(signal.SIGHUP)
    d.wait_for("config.reloaded", count=2)
    assert d.events("config.reload_note")
    dovecot.deliver(u3, message("carol@example.com", u3, "Hi"), "carol@example.com")
    d.wait_for("reply.sent", count=5)
    assert d.events("reply.sent")[-1]["mailbox"] == u3
