"""End to end: `awayd run` as a process, mail through Dovecot's LMTP, replies at an aiosmtpd sink."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.daemon import Daemons, awayd, body_text, header, mailbox, message, write_config
from tests.integration.dovecot import Dovecot
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration

USER = "alice@example.org"
COLLEAGUE = "marc.dubois@partner.example"

BOUNCE = (
    "From: Mail Delivery System <MAILER-DAEMON@mx.partner.example>\r\n"
    f"To: {USER}\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "Message-ID: <bounce.1@mx.partner.example>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
    "\r\n"
    "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
    "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
    "Reporting-MTA: dns; mx.partner.example\r\n\r\n"
    "Final-Recipient: rfc822; nobody@partner.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    "--b1--\r\n"
).encode()


def test_daemon_answers_the_colleague_once_and_no_machine(
    dovecot: Dovecot, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink, mailboxes=[
        mailbox("alice", USER, dovecot, display_name="Alice Martin")])
    with Daemons(tmp_path) as daemons:
        d = daemons.start(config)
        d.wait_watching()
        first = message(COLLEAGUE, USER, "Meeting on Thursday", name="Marc Dubois")
        deliveries = [
            (first, COLLEAGUE),
            (message(COLLEAGUE, USER, "Re: Meeting on Thursday", name="Marc Dubois"), COLLEAGUE),
            (message("news@shop.example", USER, "Our autumn sale", name="Shop", headers={
                "List-Id": "Shop news <news.shop.example>",
                "List-Unsubscribe": "<mailto:unsubscribe@shop.example>"}), "news@shop.example"),
            (BOUNCE, ""),
            (message("paul@partner.example", USER, "Automatic reply: Meeting", name="Paul",
                     headers={"Auto-Submitted": "auto-replied"}), "paul@partner.example"),
        ]
        for raw, envelope_from in deliveries:
            dovecot.deliver(USER, raw, envelope_from)

        processed = d.wait_for("message.processed", count=len(deliveries))
        d.wait_for("reply.sent")
        assert d.stop() == 0

    assert [(e["uid"], e["reason"]) for e in processed] == [
        (1, "reply"), (2, "already-replied"), (3, "list"), (4, "null-sender"),
        (5, "auto-submitted")]
    (reply,) = smtp_sink.messages
    assert (reply.mail_from, reply.rcpt_tos, reply.notify) == ("", (COLLEAGUE,), "NEVER")
    assert header(reply.content, "From") == f"Alice Martin <{USER}>"
    assert header(reply.content, "To") == f"Marc Dubois <{COLLEAGUE}>"
    assert header(reply.content, "Subject") == "Auto: Meeting on Thursday"
    assert header(reply.content, "In-Reply-To") == header(first, "Message-ID")
    assert header(reply.content, "Auto-Submitted") == "auto-replied"
    assert "Hello Marc" in body_text(reply.content)

    done = awayd("report", "--json", config=config)
    assert done.returncode == 0, done.stderr
    (box,) = json.loads(done.stdout)["mailboxes"]
    assert box["decisions"] == len(deliveries)
    assert box["outbox"]["sent"] == 1
