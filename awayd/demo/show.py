"""How the demo prints what happens: deliveries, decisions, replies, the summary."""

from __future__ import annotations

from collections.abc import Sequence

from awayd.demo.daemon import LogEvent
from awayd.demo.samples import Sample
from awayd.demo.servers import Received
from awayd.demo.settings import DemoSettings

REPLY_HEADERS = ("From", "To", "Subject", "Auto-Submitted")
_QUIET = {"message.processed", "reply.sent", "checkpoint.created", "service.started",
          "service.stopping", "service.stopped"}


def delivered(sample: Sample, sender: str, subject: str, uid: int | None) -> str:
    where = f", uid {uid}" if uid is not None else ""
    return (f"\n-> [{sample.name}] {sample.what}{where}\n"
            f"   Return-Path: <{sample.envelope_sender}>  From: {sender}  Subject: {subject}")


def decision(event: LogEvent, label: str = "") -> str:
    """`  SKIP  newsletter@news.example  list  (List-Id header: mail from a mailing list)`."""
    reason = event.get("reason")
    verb = "REPLY" if reason == "reply" else "SKIP "
    sender = event.get("sender") or "<>"
    detail = event.get("detail")
    rule = event.get("rule")
    if reason == "reply" and rule and rule not in detail:
        detail = f"rule {rule}: {detail}"
    tag = f"  [{label}]" if label else ""
    return f"  {verb} {sender}  {reason}  ({detail}){tag}"


def reply_sent(event: LogEvent) -> str:
    return f"  SENT  reply to {event.get('recipient')} (outbox {event.get('outbox_id')})"


def problem(event: LogEvent) -> str | None:
    """Warnings and errors of the daemon, which the demo should not hide."""
    if event.event in _QUIET or event.level not in ("warning", "error", "critical"):
        return None
    extra = event.get("error") or event.get("note") or event.get("problems")
    return f"  !     daemon {event.level}: {event.event}" + (f": {extra}" if extra else "")


def reply(received: Received) -> str:
    """The headers and text of a reply the SMTP sink received."""
    rcpt = ", ".join(f"<{r}>" for r in received.rcpt_tos)
    lines = [f"  SMTP sink received a reply: MAIL FROM:<{received.mail_from}> RCPT TO:{rcpt}"]
    lines += [f"      {name}: {received.header(name)}" for name in REPLY_HEADERS]
    lines.append("")
    lines += [f"      {line}".rstrip() for line in received.text.rstrip("\n").split("\n")]
    return "\n".join(lines)


def inbound(received: Received) -> str:
    rcpt = ", ".join(received.rcpt_tos)
    return (f"\n-> by SMTP: MAIL FROM:<{received.mail_from}> to {rcpt}: "
            f"{received.header('Subject')!r} (stored in INBOX by IMAP APPEND)")


def banner(s: DemoSettings, imap_user: str) -> str:
    return "\n".join([
        "awayd demo: an embedded IMAP server, an SMTP sink and the real daemon, all on 127.0.0.1",
        f"  IMAP  127.0.0.1:{s.imap_port} (pymap, in memory)  user {imap_user}",
        f"  SMTP  127.0.0.1:{s.smtp_port} (aiosmtpd sink: replies stop here)",
        f"  config {s.config_path}",
        f"  rule 'away': away from {s.start} until {s.until} ({s.timezone}), "
        "one reply per sender per 7 days",
    ])


def summary(samples: Sequence[Sample], reasons: Sequence[str | None], replies: int,
            wrong: Sequence[str]) -> str:
    answered = sum(1 for r in reasons if r == "reply")
    skipped = [r for r in reasons if r is not None and r != "reply"]
    line = (f"\nSummary: {len(samples)} messages delivered, {answered} answered, "
            f"{len(skipped)} skipped ({', '.join(skipped)}); the SMTP sink received "
            f"{replies} repl{'y' if replies == 1 else 'ies'}.")
    if wrong:
        return line + "\nNot as expected:\n" + "\n".join(f"  {w}" for w in wrong)
    return line + " All as expected."


def keep_help(s: DemoSettings, imap_user: str) -> str:
    return "\n".join([
        "",
        "The demo stays up; send your own mail (Ctrl-C stops everything and deletes "
        f"{s.folder}):",
        f"  IMAP  host 127.0.0.1  port {s.imap_port}  no TLS  user {imap_user}  "
        f"password {s.password}",
        "        APPEND a message to INBOX with a Return-Path: header (the envelope sender)",
        f"  SMTP  host 127.0.0.1  port {s.smtp_port}  no TLS, no AUTH: mail to {imap_user} is "
        "stored in INBOX;",
        "        any other recipient is a reply and is printed, e.g.",
        f"        swaks --server 127.0.0.1:{s.smtp_port} --from you@elsewhere.example "
        f"--to {imap_user} --header 'Subject: hello'",
        "",
    ])
