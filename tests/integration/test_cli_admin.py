"""`awayd report`, `forget`, `suppress` and `explain --history` against a store the daemon wrote."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, Daemons, awayd, message, state_path
from tests.integration.dovecot import Dovecot
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration


def ok(*args: str, config: Path) -> str:
    done = awayd(*args, config=config)
    assert done.returncode == 0, f"awayd {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done.stdout


def deliver_and_wait(dovecot: Dovecot, user: str, d: Daemon, sender: str, processed: int,
                     subject: str = "Lunch?") -> dict[str, object]:
    """Deliver one message from `sender`; wait until it is the `processed`-th decision."""
    dovecot.deliver(user, message(sender, user, subject), sender)
    event = d.wait_for("message.processed", count=processed)[processed - 1]
    if event["reason"] == "reply":
        d.wait_for("reply.sent", count=len(d.events("message.processed", reason="reply")))
    return event


def test_report_counts_decisions_and_replies_in_text_and_json_within_since(
    dovecot: Dovecot, mail_user: str, daemons: Daemons, config: Path
) -> None:
    d = daemons.start(config)
    d.wait_watching()
    deliver_and_wait(dovecot, mail_user, d, "bob@example.net", 1)
    deliver_and_wait(dovecot, mail_user, d, "bob@example.net", 2)
    dovecot.deliver(mail_user, message("news@example.net", mail_user, headers={
        "List-Id": "News <news.example.net>"}), "news@example.net")
    d.wait_for("message.processed", count=3)
    assert d.stop() == 0

    data = json.loads(ok("report", "--json", config=config))
    (box,) = data["mailboxes"]
    assert box["mailbox"] == "alice"
    assert box["decisions"] == 3
    assert {r["reason"]: r["count"] for r in box["reasons"]} == {
        "reply": 1, "already-replied": 1, "list": 1}
    assert box["outbox"] == {"sent": 1, "failed": 0, "dropped": 0, "pending": 0}
    (away,) = box["rules"]
    assert (away["rule"], away["decisions"], away["replies"]) == ("away", 2, 1)

    text = ok("report", "--since", "1h", config=config)
    assert "mailbox alice: 3 messages; replies sent 1, failed 0, dropped 0, pending 0" in text
    assert "already-replied" in text
    assert json.loads(ok("report", "--json", "--since", "0s", config=config))["mailboxes"] == []
    assert "no decisions recorded" in ok("report", "--since", "0s", config=config)


def test_forget_lets_an_answered_sender_be_answered_again(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    d = daemons.start(config)
    d.wait_watching()
    assert deliver_and_wait(dovecot, mail_user, d, "bob@example.net", 1)["reason"] == "reply"
    assert deliver_and_wait(dovecot, mail_user, d, "bob@example.net", 2)["reason"] == "already-replied"

    out = ok("forget", "--mailbox", "alice", "Bob@Example.NET", config=config)  # while it runs
    assert "forgot 1 reply record(s) of bob@example.net in mailbox alice" in out
    assert deliver_and_wait(dovecot, mail_user, d, "bob@example.net", 3)["reason"] == "reply"
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("bob@example.net",)] * 2
    assert awayd("forget", "--mailbox", "nobody", "bob@example.net", config=config).returncode == 2
    assert d.stop() == 0


def test_suppressed_domain_is_skipped_by_the_running_daemon_until_removed(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, config: Path
) -> None:
    d = daemons.start(config)
    d.wait_watching()
    assert "suppressed @example.com (all mailboxes)" in ok("suppress", "add", "@Example.com",
                                                           config=config)
    ok("suppress", "add", "--mailbox", "alice", "dave@example.net", config=config)
    listed = ok("suppress", "list", config=config).splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["@example.com", "all mailboxes"], ["dave@example.net", "mailbox alice"]]

    assert deliver_and_wait(dovecot, mail_user, d, "carol@example.com", 1)["reason"] == "suppressed"
    assert deliver_and_wait(dovecot, mail_user, d, "dave@example.net", 2)["reason"] == "suppressed"
    assert "removed @example.com" in ok("suppress", "remove", "@example.com", config=config)
    assert deliver_and_wait(dovecot, mail_user, d, "carol@example.com", 3)["reason"] == "reply"
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("carol@example.com",)]
    missing = awayd("suppress", "remove", "@example.com", config=config)
    assert missing.returncode == 1
    assert "not on the list" in missing.stderr
    assert d.stop() == 0


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_explain_with_history_reports_already_replied_and_never_writes_the_store(
    dovecot: Dovecot, mail_user: str, daemons: Daemons, config: Path, tmp_path: Path
) -> None:
    d = daemons.start(config)
    d.wait_watching()
    deliver_and_wait(dovecot, mail_user, d, "bob@example.net", 1)
    assert d.stop() == 0
    with dovecot.imap_client(mail_user) as client:  # the message exactly as it was stored
        client.select_folder("INBOX", readonly=True)
        raw = bytes(client.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"])
    eml = tmp_path / "bob.eml"
    eml.write_bytes(raw)
    db = state_path(config)
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists()  # the daemon checkpointed and removed it at its clean exit
    before = _sha(db)

    with_history = json.loads(ok("explain", "--history", "--json", str(eml), config=config))
    assert (with_history["decision"], with_history["reason"]) == ("skip", "already-replied")
    assert with_history["mailbox"] == "alice"
    without = json.loads(ok("explain", "--json", str(eml), config=config))
    assert (without["decision"], without["reason"]) == ("reply", "reply")
    assert without["reply"]["envelope_to"] == "bob@example.net"
    text = ok("explain", "--history", str(eml), config=config)
    assert "already-replied" in text
    assert _sha(db) == before
    # A read-only SQLite reader may leave an empty WAL behind; it must hold no frame.
    assert not wal.exists() or wal.stat().st_size == 0
