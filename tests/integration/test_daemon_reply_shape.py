"""The real daemon's replies: From as the sender wrote it, To with a name, UTF-8 ids over SMTPUTF8."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemons, header, mailbox, message, state_path, write_config
from tests.integration.dovecot import DOMAIN, Dovecot
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration


@pytest.fixture
def plain_sink() -> Iterator[SmtpSink]:
    """A relay that does not offer SMTPUTF8."""
    sink = SmtpSink(enable_SMTPUTF8=False)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def outbox_states(config: Path) -> list[tuple[str, str]]:
    uri = state_path(config).resolve().as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute("SELECT recipient, state FROM outbox ORDER BY id").fetchall()
    conn.close()
    return [(str(r), str(s)) for r, s in rows]


def test_reply_comes_from_the_alias_or_sub_address_the_sender_wrote(
    tmp_path: Path, dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons
) -> None:
    """Dovecot's LMTP writes Delivered-To: the user; the sender wrote an alias or a sub-address."""
    local = mail_user.partition("@")[0]
    alias = f"{local}.alias@{DOMAIN}"
    config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink, mailboxes=[
        mailbox("alice", mail_user, dovecot, aliases=[alias],
                rules=[{"name": "away", "interval": 0, "text": "Away."}])])
    d = daemons.start(config)
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", f"Alice <{alias}>",
                                       headers={"X-Original-To": alias}), "bob@example.net")
    dovecot.deliver(mail_user, message("carol@example.net", f"{local}+Travel@{DOMAIN}",
                                       name="Carol Jones"), "carol@example.net")
    mails = smtp_sink.wait_for(2)
    assert d.stop() == 0
    by_rcpt = {m.rcpt_tos[0]: m for m in mails}
    assert header(by_rcpt["bob@example.net"].content, "From") == alias
    assert header(by_rcpt["bob@example.net"].content, "To") == "Bob Martin <bob@example.net>"
    assert header(by_rcpt["carol@example.net"].content, "From") == f"{local}+Travel@{DOMAIN}"
    assert header(by_rcpt["carol@example.net"].content, "To") == "Carol Jones <carol@example.net>"


def test_utf8_message_id_is_kept_and_the_reply_goes_with_smtputf8(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    d = daemons.start(config)
    d.wait_watching()
    original = "<réunion.1@exämple.de>"
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "Réunion", message_id=original),
                    "bob@example.net")
    (mail,) = smtp_sink.wait_for(1)
    assert d.stop() == 0
    assert "SMTPUTF8" in mail.mail_options
    assert f"\r\nIn-Reply-To: {original}\r\n".encode() in mail.content
    assert header(mail.content, "Subject") == "Auto: Réunion"
    assert outbox_states(config) == [("bob@example.net", "sent")]


def test_relay_without_smtputf8_gets_the_reply_without_utf8_ids(
    tmp_path: Path, dovecot: Dovecot, mail_user: str, plain_sink: SmtpSink, daemons: Daemons
) -> None:
    config = write_config(tmp_path / "awayd.yaml", sink=plain_sink,
                          mailboxes=[mailbox("alice", mail_user, dovecot)])
    d = daemons.start(config)
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, message_id="<r.1@exämple.de>"),
                    "bob@example.net")
    (mail,) = plain_sink.wait_for(1)
    assert d.stop() == 0
    assert "SMTPUTF8" not in mail.mail_options
    assert mail.content.isascii()
    assert b"In-Reply-To" not in mail.content
    assert outbox_states(config) == [("bob@example.net", "sent")]


def test_relay_without_smtputf8_fails_a_utf8_address_clearly(
    tmp_path: Path, dovecot: Dovecot, mail_user: str, plain_sink: SmtpSink, daemons: Daemons
) -> None:
    alias = f"jörg.{mail_user.partition('@')[0]}@{DOMAIN}"
    config = write_config(tmp_path / "awayd.yaml", sink=plain_sink,
                          mailboxes=[mailbox("alice", mail_user, dovecot, aliases=[alias])])
    d = daemons.start(config)
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", alias), "bob@example.net")
    (failed,) = d.wait_for("smtp.send_failed")
    assert d.stop() == 0
    assert f"{plain_sink.host}:{plain_sink.port}" in failed["error"]
    assert "does not offer SMTPUTF8" in failed["error"]
    assert outbox_states(config) == [("bob@example.net", "failed")]
    assert plain_sink.messages == []
