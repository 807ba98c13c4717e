"""The real daemon against faults on the reply path: a poison message, a full disk, a hung relay,
a relay refusing our credentials, and the exit codes of `run --once` with replies left pending."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.integration.daemon import Daemons, header, message, state_path, to_one
from tests.integration.dovecot import Dovecot
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
