"""The ordered guard table of DESIGN §4 (guards 1-20): pure checks on a parsed message."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from awayd.config.model import Mailbox
from awayd.core import machine
from awayd.core import own as ow
from awayd.core import reasons as r
from awayd.core.message import Address, Message, one_line, unwrap_srs
from awayd.core.opening import opening_text


@dataclass(frozen=True)
class Envelope:
    """What the delivery agent left in the headers about the SMTP envelope (DESIGN §3)."""

    reply_to: str  # the address the reply goes to, as written (Return-Path or From fallback)
    sender_key: str  # lowercased, SRS unwrapped: history, self and audience checks
    recipient: str  # the mailbox address the message was delivered to
    addressed: frozenset[str]  # mailbox addresses found in To/Cc/Bcc/Resent-*/Delivered-To
    written: tuple[str, ...]  # the mailbox's addresses the sender wrote, in header order
    reply_from: str  # the first of `written`, else the address delivered to: the reply's From


@dataclass(frozen=True)
class Context:
    message: Message
    mailbox: Mailbox
    now: datetime
    arrival: datetime | None  # INTERNALDATE; None: judged from the topmost Received: line
    sender: str | None = None  # envelope sender as written; None before guard 3 ran
    sender_key: str = ""
    #: what several guards derive from the body, derived once (never compared or hashed)
    memo: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False, repr=False)


Guard = Callable[[Context], str | None]  # returns a human detail when it refuses

_SYSTEM_LOCAL = re.compile(
    r"^(mailer-daemon|postmaster|listserv|majordomo|mailman|.+-request|owner-.+|.*-bounces?(\+.*)?"
    r"|bounces?([-+=_].+)?|.+-bounces?([-+=].*)?)$"
)
_BATV = re.compile(r"^(prvs|btv1|msprvs1)=[^=]+=(.+)$")  # BATV tags the local part: prvs=tag=bob
_NOREPLY_LOCAL = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|notifications?[-_.]?only)([-_.+].*)?$"
)
_AUTORESPONDER_HEADERS = ("x-autoreply", "x-autorespond", "x-auto-reply-from", "x-mail-autoreply",
                          "x-autoresponder", "x-auto-reply", "x-vacation")
_BULK_HEADERS = ("feedback-id", "x-campaign", "x-campaignid", "x-campaign-id", "x-mc-user",
                 "x-mailchimp-campaign", "x-sg-eid", "x-mailgun-tag", "x-ses-outgoing",
                 "x-marketoid", "x-newsletter", "list-unsubscribe-post", "x-bulkmail",
                 "x-report-abuse", "x-csa-complaints")
_LIST_HEADERS = ("list-id", "list-post", "list-owner", "list-subscribe", "list-unsubscribe",
                 "list-help", "list-archive", "mailing-list")
_ADDRESS_TOKEN = re.compile(r"[^\s<>,;:()\"\[\]]+@[^\s<>,;:()\"\[\]]+")
_RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")
_DMARC_FAIL = re.compile(r"\bdmarc\s*=\s*fail\b", re.IGNORECASE)


@lru_cache(maxsize=4096)
def deliverable(address: str) -> bool:
    """Syntax and domain shape only: no DNS is ever asked."""
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except (EmailNotValidError, UnicodeError, ValueError):
        return False
    return True


def envelope(message: Message, mailbox: Mailbox, sender: str) -> Envelope:
    """Reconstruct the envelope for a message that passed the sender guards."""
    # `addressed` holds each address as written (a sub-address too) and the one it belongs to,
    # so a rule's `match.to` may name either
    written: list[str] = []
    addressed: set[str] = set()
    for name in _RECIPIENT_HEADERS:
        if not message.has(name):
            continue
        for a in message.addresses(name):
            found = ow.match(mailbox, a.address)
            if found is not None:
                written.append(found[1])
                addressed.update((a.key, found[0]))
    delivered: dict[str, list[str]] = {"delivered-to": [], "x-original-to": []}
    for name, forms in delivered.items():
        for value in message.get_all(name):
            found = ow.match(mailbox, one_line(value).strip("<>"))
            if found is not None:
                forms.append(found[1])
                addressed.update((found[1].lower(), found[0]))
    # the envelope recipient is the final address; the From fallback the one before aliasing
    final = delivered["delivered-to"] + delivered["x-original-to"]
    recipient = final[0] if final else mailbox.address
    first_given = delivered["x-original-to"] + delivered["delivered-to"]
    reply_from = written[0] if written else first_given[0] if first_given else mailbox.address
    return Envelope(sender, unwrap_srs(sender).lower(), recipient, frozenset(addressed),
                    tuple(written), reply_from)


def _malformed(c: Context) -> str | None:
    m = c.message
    if not m.fields:
        return "no header block"
    if m.from_address is None and m.return_path() in (None, "") and not m.addresses("sender"):
        return "no From, Sender or Return-Path address"
    return None


def _null_sender(c: Context) -> str | None:
    return "Return-Path is <> (a bounce or notification)" if c.message.return_path() == "" else None


def _no_return_path(c: Context) -> str | None:
    if c.message.return_path() is not None:
        return None
    if c.mailbox.sender_fallback == "from" and c.message.from_address is not None:
        return None
    return "no Return-Path header; the envelope sender is unknown"


def _invalid_sender(c: Context) -> str | None:
    assert c.sender is not None
    if "=?" in c.sender:  # RFC 2047 §5: never in an addr-spec; the email package would decode it
        return f"{c.sender!r} holds an encoded word"
    if not deliverable(c.sender):
        return f"{c.sender!r} is not a deliverable address"
    return None


def _self(c: Context) -> str | None:
    if ow.owns(c.mailbox, c.sender_key):
        return f"{c.sender_key} is this mailbox's own address"
    return None


def _loop(c: Context) -> str | None:
    for value in c.message.get_all("x-loop"):
        # whole addresses only: X-Loop: malice@example.org does not name alice@example.org
        if any(ow.owns(c.mailbox, token) for token in _ADDRESS_TOKEN.findall(value)):
            return "X-Loop names this mailbox"
    for value in c.message.get_all("x-ms-exchange-inbox-rules-loop"):
        # Exchange adds it when a mailbox's inbox rule forwarded or answered the message
        if any(ow.owns(c.mailbox, token) for token in _ADDRESS_TOKEN.findall(value)):
            return "X-MS-Exchange-Inbox-Rules-Loop names this mailbox"
    mid = (c.message.message_id or "").lower()
    if mid.startswith("<awayd."):
        return "Message-ID is one of awayd's own replies"
    return None


def _local_parts(c: Context) -> list[str]:
    known = c.memo.get("locals")
    if known is not None:
        return known.split("\n")
    parts = [c.sender_key.rpartition("@")[0]]
    sender_from = c.message.from_address
    if sender_from is not None:
        parts.append(unwrap_srs(sender_from.address).lower().rpartition("@")[0])
    parts = [m.group(2) if "=" in p and (m := _BATV.match(p)) else p for p in parts]
    c.memo["locals"] = "\n".join(parts)
    return parts


def _system_sender(c: Context) -> str | None:
    parts = _local_parts(c)
    for local in parts:
        if _SYSTEM_LOCAL.match(local):
            return f"local part {local!r} belongs to a mail system"
    sender_from = c.message.from_address
    if sender_from is not None and machine.system_display_name(sender_from.name):
        return f"From {sender_from.name!r} is a mail system's name"
    return machine.cron_mail(c.message, parts)


def _noreply_sender(c: Context) -> str | None:
    for local in _local_parts(c):
        if _NOREPLY_LOCAL.match(local):
            return f"local part {local!r} asks for no reply"
    return None


def _auto_submitted(c: Context) -> str | None:
    for value in c.message.get_all("auto-submitted"):
        keyword = value.split(";")[0].strip().lower()
        if keyword != "no":
            return f"Auto-Submitted: {keyword or '(empty)'}"
    return None


def _x_auto_response_suppress(c: Context) -> str | None:
    for value in c.message.get_all("x-auto-response-suppress"):
        tokens = {t.strip().lower() for t in value.split(",")}
        if tokens & {"all", "oof"}:
            return f"X-Auto-Response-Suppress: {one_line(value)}"
    return None


def _precedence(c: Context) -> str | None:
    for name in ("precedence", "x-precedence"):
        for value in c.message.get_all(name):
            if value.strip().lower() in ("bulk", "list", "junk"):
                return f"{name.title()}: {value.strip().lower()}"
    return None


def _list(c: Context) -> str | None:
    for name in _LIST_HEADERS:
        if c.message.has(name):
            return f"{name.title()} header: mail from a mailing list"
    if _client(c) is None:
        found = machine.moderation(c.message.subject, _text(c))
        if found:
            return f"{found!r}: a list's moderation notice"
    return None


def _text(c: Context) -> str:
    if "text" not in c.memo:
        c.memo["text"] = opening_text(c.message)
    return c.memo["text"] or ""


def _report(c: Context) -> str | None:
    if "report" not in c.memo:
        c.memo["report"] = machine.report_kind(c.message)
    return c.memo["report"]


def _client(c: Context) -> str | None:
    if "client" not in c.memo:
        c.memo["client"] = machine.human_client(c.message)
    return c.memo["client"]


def _dsn(c: Context) -> str | None:
    kind = _report(c)
    if kind is not None and kind != "disposition-notification":
        what = {"delivery-status": "a delivery status notification",
                "feedback-report": "an abuse or feedback report (RFC 5965)"}.get(kind, "a report")
        return f"{what} (multipart/report{'; ' + kind if kind else ''})"
    if c.message.has("x-failed-recipients"):
        return "X-Failed-Recipients: a bounce"
    if _client(c) is not None:
        return None  # a person's mail client: wording alone does not make it a bounce
    subject = c.message.subject
    if machine.bounce_subject(subject):
        return f"subject {subject[:60]!r} is a bounce or a filter's notice"
    found = machine.bounce_text(_text(c))
    if found:
        return f"the text opens like a bounce or a filter's notice ({found!r})"
    return None


def _mdn(c: Context) -> str | None:
    if _report(c) == "disposition-notification":
        return "a read receipt (disposition notification)"
    return None


def _autoresponder(c: Context) -> str | None:
    m = c.message
    for name in _AUTORESPONDER_HEADERS:
        if m.has(name):
            return f"{name} header: another auto-responder"
    for value in m.get_all("x-autogenerated"):
        if value.strip().lower() == "reply":
            return "X-Autogenerated: Reply"
    for value in m.get_all("precedence"):
        if value.strip().lower().replace("-", "_") == "auto_reply":
            return "Precedence: auto_reply"
    subject = m.subject
    if machine.strong_auto_subject(subject):
        return f"subject {subject[:60]!r} is an automatic reply"
    if _client(c) is not None:
        return None  # a person who writes about an absence is answered
    found = machine.auto_text(_text(c))
    if found:
        return f"the text opens like an automatic reply ({found!r})"
    return None


def _bulk(c: Context) -> str | None:
    for name in _BULK_HEADERS:
        if c.message.has(name):
            return f"{name} header: bulk or marketing mail"
    if "\nx-mailchimp-" in "\n" + "\n".join(c.message.names):  # one scan, no generator
        return "Mailchimp headers: marketing mail"
    return None


def _spam(c: Context) -> str | None:
    m = c.message
    for name in ("x-spam-flag", "x-spam"):
        for value in m.get_all(name):
            if value.strip().lower().startswith("yes"):
                return f"{name}: yes"
    for value in m.get_all("x-spam-status"):
        if value.strip().lower().startswith("yes"):
            return "X-Spam-Status: Yes"
    for value in m.get_all("x-rspamd-action"):
        if value.strip().lower() in ("reject", "add header", "rewrite subject"):
            return f"rspamd action {value.strip().lower()}"
    return None


def _unauthenticated(c: Context) -> str | None:
    settings = c.mailbox.backscatter
    if not settings.enabled:
        return None
    results = c.message.get_all("authentication-results")
    trusted = results if settings.authserv_ids else results[:1]
    for value in trusted:
        authserv, _, rest = value.partition(";")
        authserv_id = authserv.strip().split()[0].lower() if authserv.strip() else ""
        if settings.authserv_ids and authserv_id not in settings.authserv_ids:
            continue
        if _DMARC_FAIL.search(rest):
            return f"{authserv_id} says dmarc=fail: the sender is likely forged"
    return None


def _not_addressed(c: Context) -> str | None:
    if any(ow.owns(c.mailbox, a.address) for a in c.message.addresses(*_RECIPIENT_HEADERS)):
        return None
    return "none of the mailbox's addresses is in To, Cc, Bcc or Resent-*"


def _too_old(c: Context) -> str | None:
    # without an INTERNALDATE (explain), the topmost Received: date, else now: never too old
    arrival = c.arrival or c.message.arrival_from_received()
    if arrival is None:
        return None
    age = c.now - arrival
    if age > c.mailbox.max_age:
        return f"arrived {age.days} days ago, more than max_age {c.mailbox.max_age}"
    return None


#: Guards before the envelope sender is known (1-3).
HEAD: tuple[tuple[str, Guard], ...] = (
    (r.MALFORMED, _malformed),  # nothing to reply to
    (r.NULL_SENDER, _null_sender),  # bounces and notifications (RFC 3834 §2)
    (r.NO_RETURN_PATH, _no_return_path),  # never guess the envelope from From
)

#: Guards that need the envelope sender (4-20), in contract order.
TABLE: tuple[tuple[str, Guard], ...] = (
    (r.INVALID_SENDER, _invalid_sender),  # would only bounce
    (r.SELF, _self),  # our own mail coming back
    (r.LOOP, _loop),  # our own reply or X-Loop
    (r.SYSTEM_SENDER, _system_sender),  # daemons and list software
    (r.NOREPLY_SENDER, _noreply_sender),  # nobody reads it
    (r.AUTO_SUBMITTED, _auto_submitted),  # RFC 3834 §5
    (r.X_AUTO_RESPONSE_SUPPRESS, _x_auto_response_suppress),  # Exchange's opt-out
    (r.PRECEDENCE, _precedence),  # bulk, list, junk
    (r.LIST, _list),  # RFC 2369/2919 list headers
    (r.DSN, _dsn),  # RFC 3464 bounces with a non-null sender
    (r.MDN, _mdn),  # RFC 8098 read receipts
    (r.AUTORESPONDER, _autoresponder),  # other vacation programs
    (r.BULK, _bulk),  # ESP and marketing shapes
    (r.SPAM, _spam),  # the filter's verdict
    (r.UNAUTHENTICATED, _unauthenticated),  # forged senders: backscatter
    (r.NOT_ADDRESSED, _not_addressed),  # Bcc and list copies (RFC 3834 §3.1.1)
    (r.TOO_OLD, _too_old),  # a late or replayed message
)


def sender_of(message: Message, mailbox: Mailbox) -> str:
    """The envelope sender after guards 1-3 passed (Return-Path, or From with fallback)."""
    rp = message.return_path()
    if rp:
        return rp
    addr: Address | None = message.from_address
    return addr.address if addr else ""


def first_refusal(context: Context, table: tuple[tuple[str, Guard], ...]) -> tuple[str, str] | None:
    for reason, guard in table:
        detail = guard(context)
        if detail is not None:
            return reason, detail
    return None
