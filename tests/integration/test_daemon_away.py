"""The running daemon and `awayd away`/`back`: the absence applies without a reload."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.daemon import (
    Daemons,
    awayd,
    body_text,
    mailbox,
    message,
    rule,
    state_path,
    write_config,
)
from tests.integration.dovecot import Dovecot
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration


def history_rows(config: Path, name: str) -> int:
    conn = sqlite3.connect(f"file:{state_path(config)}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM history WHERE mailbox = ?", (name,)).fetchone()[0])
    finally:
        conn.close()


def test_away_while_running_answers_and_back_stops_and_resets_history(
    tmp_path: Path, dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons
) -> None:
    later = rule("summer", "Away in summer.", when={"from": "2099-07-01", "until": "2099-07-31"})
    config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink,
                          mailboxes=[mailbox("alice", mail_user, dovecot, rules=[later])])
    d = daemons.start(config)
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "Before"), "bob@example.net")
    assert d.wait_for("message.processed", count=1)[0]["reason"] == "no-rule"

    until = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    (tmp_path / "away.txt").write_text("Hello {{ sender.first_name }}, out until {{ rule.until | "
                                       "date('iso') }}.\n", encoding="utf-8")
    done = awayd("away", "alice", "--until", until, "--text", str(tmp_path / "away.txt"),
                 config=config)
    assert done.returncode == 0, done.stderr
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "During"), "bob@example.net")
    event = d.wait_for("message.processed", count=2)[1]
    assert (event["reason"], event["rule"]) == ("reply", "owner-absence")
    d.wait_for("reply.sent")
    assert body_text(smtp_sink.messages[0].content).startswith(f"Hello Bob, out until {until}.")
    assert history_rows(config, "alice") == 1

    done = awayd("back", "alice", config=config)
    assert done.returncode == 0, done.stderr
    assert "forgot 1 reply record(s)" in done.stdout
    assert history_rows(config, "alice") == 0
    dovecot.deliver(mail_user, message("carol@example.net", mail_user, "After"), "carol@example.net")
    assert d.wait_for("message.processed", count=3)[2]["reason"] == "no-rule"
    assert d.stop() == 0
    assert len(smtp_sink.messages) == 1

