"""The real `awayd run` against Dovecot and an aiosmtpd sink: replies, backlog, flags, reload, stop."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.integration.daemon import (
    Daemons,
    body_text,
    flags,
    header,
    mailbox,
    message,
    rule,
    to_one,
    write_config,
)
from tests.integration.dovecot import Dovecot
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration


def config_for(tmp_path: Path, user: str, dovecot: Dovecot, sink: SmtpSink, **box: object) -> Path:
    return write_config(tmp_path / "awayd.yaml", sink=sink,
                        mailboxes=[mailbox("alice", user, dovecot, **box)])  # type: ignore[arg-type]


@pytest.mark.parametrize("idle", [True, False], ids=["idle", "poll"])
def test_one_reply_per_sender_per_interval_sent_to_the_return_path(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    idle: bool,
) -> None:
    """Two messages of one sender get one reply, another sender its own; envelope per RFC 3834."""
    d = daemons.start(config_for(tmp_path, mail_user, dovecot, smtp_sink, idle=idle))
    d.wait_watching()
    # From differs from the envelope sender: only the Return-Path may be answered.
    first = message("bob.private@example.net", mail_user, "Lunch?")
    dovecot.deliver(mail_user, first, "bob@example.net")
    dovecot.deliver(mail_user, message("bob.private@example.net", mail_user, "Lunch, again?"),
                    "bob@example.net")
    dovecot.deliver(mail_user, message("carol@example.com", mail_user, name="Carol Dupont"),
                    "carol@example.com")

    processed = d.wait_for("message.processed", count=3)
    d.wait_for("reply.sent", count=2)
    assert [(e["sender"], e["reason"]) for e in processed] == [
        ("bob@example.net", "reply"),
        ("bob@example.net", "already-replied"),
        ("carol@example.com", "reply"),
    ]
    mails = smtp_sink.messages
    assert sorted(m.rcpt_tos for m in mails) == [("bob@example.net",), ("carol@example.com",)]
    for mail in mails:
        assert mail.mail_from == ""  # MAIL FROM:<>
        assert mail.notify == "NEVER"
        assert header(mail.content, "Auto-Submitted") == "auto-replied"
        assert header(mail.content, "From") == mail_user
    (to_bob,) = to_one(mails, "bob@example.net")
    (to_carol,) = to_one(mails, "carol@example.com")
    # To is the Return-Path, named only when the sender gave that very address a name
    assert header(to_bob.content, "To") == "bob@example.net"
    assert header(to_carol.content, "To") == "Carol Dupont <carol@example.com>"
    assert header(to_bob.content, "In-Reply-To") == header(first, "Message-ID")
    assert "marker-v1" in body_text(to_bob.content)
    assert d.stop() == 0


def test_mail_present_before_the_first_start_is_never_answered(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, message(f"old{n}@example.net", mail_user), f"old{n}@example.net")
    d = daemons.start(config_for(tmp_path, mail_user, dovecot, smtp_sink))
    (created,) = d.wait_for("checkpoint.created")
    assert created["uidnext"] == 4
    dovecot.deliver(mail_user, message("new@example.net", mail_user), "new@example.net")

    d.wait_for("reply.sent")
    # The backlog would have been drained before UID 4: nothing else can come later.
    assert [(e["uid"], e["reason"]) for e in d.events("message.processed")] == [(4, "reply")]
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("new@example.net",)]
    assert d.stop() == 0


def test_processing_leaves_seen_and_every_other_flag_unchanged(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path
) -> None:
    config = config_for(tmp_path, mail_user, dovecot, smtp_sink)
    first = daemons.start(config, once=True)  # sets the checkpoint; the next mail is new
    assert first.wait_exit() == 0, first.log_text()
    for n in range(3):
        dovecot.deliver(mail_user, message(f"s{n}@example.net", mail_user), f"s{n}@example.net")
    with dovecot.imap_client(mail_user) as client:
        client.select_folder("INBOX")
        client.add_flags([1], [b"\\Flagged", b"$Important"])
        client.add_flags([3], [b"\\Seen", b"\\Answered"])
    before = flags(dovecot, mail_user)
    assert before == {1: {b"\\Flagged", b"$Important"}, 2: frozenset(),
                      3: {b"\\Seen", b"\\Answered"}}

    d = daemons.start(config)
    d.wait_for("reply.sent", count=3)
    assert [e["uid"] for e in d.events("message.processed")] == [1, 2, 3]
    assert flags(dovecot, mail_user) == before
    assert d.stop() == 0
    assert flags(dovecot, mail_user) == before


def _append(dovecot: Dovecot, user: str, folder: str, senders: list[str]) -> None:
    """APPEND messages as LMTP would have stored them (Return-Path on top)."""
    with dovecot.imap_client(user) as client:
        for sender in senders:
            raw = f"Return-Path: <{sender}>\r\nDelivered-To: {user}\r\n".encode()
            client.append(folder, raw + message(sender, user))


def test_changed_uidvalidity_restarts_at_uidnext_and_answers_only_new_mail(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path
) -> None:
    """The watched folder is deleted and replaced by a restored one (a new UIDVALIDITY) while
    the daemon runs: its old messages have UIDs above the checkpoint but are not answered."""
    with dovecot.imap_client(mail_user) as client:
        client.create_folder("Work")
        client.create_folder("Restored")
    _append(dovecot, mail_user, "Work", ["w1@example.net", "w2@example.net"])
    _append(dovecot, mail_user, "Restored", [f"old{n}@example.net" for n in range(4)])
    d = daemons.start(config_for(tmp_path, mail_user, dovecot, smtp_sink, folders=["Work"]))
    (created,) = d.wait_for("checkpoint.created")
    assert created["uidnext"] == 3

    with dovecot.imap_client(mail_user) as client:
        client.delete_folder("Work")
        d.wait_for("imap.failed")  # the session on the deleted folder has ended
        client.rename_folder("Restored", "Work")
    (changed,) = d.wait_for("checkpoint.uidvalidity_changed")
    assert changed["old"] == created["uidvalidity"]
    assert changed["new"] != changed["old"]
    d.wait_for("imap.reconnected")

    _append(dovecot, mail_user, "Work", ["new@example.net"])
    d.wait_for("reply.sent")
    assert [(e["uid"], e["sender"]) for e in d.events("message.processed")] == [
        (5, "new@example.net")]
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("new@example.net",)]
    assert d.stop() == 0


def test_sighup_keeps_the_old_config_when_the_new_one_is_broken_and_applies_a_valid_one(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path
) -> None:
    config = config_for(tmp_path, mail_user, dovecot, smtp_sink)
    good_text = config.read_text(encoding="utf-8")
    d = daemons.start(config)
    d.wait_watching()

    config.write_text(good_text + "colour: blue\n", encoding="utf-8")
    d.signal(signal.SIGHUP)
    (rejected,) = d.wait_for("config.reload_rejected")
    assert any("colour" in p for p in rejected["problems"]), rejected
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    d.wait_for("reply.sent")
    assert "marker-v1" in body_text(smtp_sink.messages[0].content)

    write_config(config, sink=smtp_sink, mailboxes=[mailbox(
        "alice", mail_user, dovecot, rules=[rule(text="Back on Monday, {{ sender.first_name }}. "
                                                 "(marker-v2)")])])
    d.signal(signal.SIGHUP)
    d.wait_for("config.reloaded")
    dovecot.deliver(mail_user, message("carol@example.com", mail_user, name="Carol D"),
                    "carol@example.com")
    # An edited text is a new rule handle: bob, answered under the old text, is answered again.
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "Still there?"),
                    "bob@example.net")
    d.wait_for("reply.sent", count=3)
    mails = smtp_sink.messages
    assert [m.rcpt_tos for m in mails] == [("bob@example.net",), ("carol@example.com",),
                                           ("bob@example.net",)]
    assert all("marker-v2" in body_text(m.content) for m in mails[1:])
    assert d.events("config.reload_rejected") == [rejected]
    assert d.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_stops_the_daemon_within_10_s_with_exit_0(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    sig: signal.Signals,
) -> None:
    d = daemons.start(config_for(tmp_path, mail_user, dovecot, smtp_sink))
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    d.wait_for("reply.sent")
    d.signal(sig)
    assert d.wait_exit(timeout=10) == 0
    assert [e["event"] for e in d.events()][-2:] == ["service.stopping", "service.stopped"]


def test_save_copy_appends_the_reply_to_sent_and_leaves_inbox_flags_alone(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path
) -> None:
    with dovecot.imap_client(mail_user) as client:
        client.create_folder("Sent")
    d = daemons.start(config_for(tmp_path, mail_user, dovecot, smtp_sink, save_copy="Sent"))
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    (sent,) = d.wait_for("reply.sent")
    d.wait_until(lambda: len(flags(dovecot, mail_user, "Sent")) == 1, "a copy in Sent")

    with dovecot.imap_client(mail_user) as client:
        client.select_folder("Sent", readonly=True)
        ((_uid, item),) = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]", "FLAGS"]).items()
    copy = bytes(item[b"BODY[]"])
    assert header(copy, "Message-ID") == sent["message_id"]
    assert body_text(copy) == body_text(smtp_sink.messages[0].content)
    assert b"\\Seen" in item[b"FLAGS"]
    assert flags(dovecot, mail_user) == {1: frozenset()}  # the original is still unseen
    assert d.events("reply.copy_failed") == []
    assert d.stop() == 0
