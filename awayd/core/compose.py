"""Build the reply (RFC 3834 §3): headers, text, optional HTML, never quoting the original."""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import format_datetime

from awayd.config.model import Mailbox, Rule, Templates
from awayd.core.i18n import format_date
from awayd.core.message import Message, decode_words, one_line, unwrap_srs
from awayd.core.schedule import next_change
from awayd.core.templates import RuleVars, SenderVars, render
from awayd.core.wire import render as render_message
from awayd.errors import RenderError

MAX_SUBJECT_CHARS = 256  # decoded characters, as Pigeonhole's vacation caps its subject
MAX_REFERENCES = 10
MAX_ID_CHARS = 900  # a longer msg-id cannot sit on one line of at most 998 octets


@dataclass(frozen=True)
class Reply:
    envelope_from: str
    envelope_to: str
    from_: str
    to: str
    subject: str
    language: str
    message_id: str
    headers: tuple[tuple[str, str], ...]  # every header, in order, values unencoded
    text: str
    html: str | None

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def to_bytes(self) -> bytes:
        """The RFC 5322 message with CRLF line ends, RFC 2047 encoded where needed.

        A non-ASCII recipient address is written as UTF-8 (RFC 6532): the sender uses SMTPUTF8.
        """
        return render_message(self.headers, self.text, self.html)


def ticket(message: Message) -> str:
    """A short stable reference for a request, derived from its Message-ID."""
    seed = message.message_id or "|".join(
        (message.get("from") or "", message.get("date") or "", message.subject))
    digest = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest()
    return base64.b32encode(digest[:5]).decode("ascii")[:6]


def first_name(name: str) -> str:
    """'Marie Dupont' → 'Marie'; 'Dupont, Marie' → 'Marie'; an address-like name → ''."""
    name = name.strip().strip("'\"")
    if not name or "@" in name:
        return ""
    if "," in name:
        name = name.split(",", 1)[1].strip()
    return name.split()[0] if name.split() else ""


_ATOM_TEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\- .\u0080-\U0010ffff]*$")


def mailbox_header(name: str, address: str) -> str:
    """`Name <address>`, the name quoted when it holds specials (RFC 5322 §3.4)."""
    name = one_line(name)
    if not name:
        return address
    # a run of spaces survives only quoted: between atoms it is one space to every parser
    if not _ATOM_TEXT.match(name) or name != name.strip(". ") or "  " in name:
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def _header_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or len(value.splitlines()) > 1:
        raise RenderError(f"the rendered {name} contains a line break")
    # The email package decodes encoded words again when it writes the header, so a literal
    # "=?utf-8?q?=0D=0A?=" would become a line break on the wire: decode until stable.
    value = value.strip()
    for _ in range(4):
        decoded = one_line(decode_words(value))
        if decoded == value:
            return value
        value = decoded
    raise RenderError(f"the rendered {name} holds nested encoded words")


def _local(value: date | datetime | None, mailbox: Mailbox) -> date | datetime | None:
    """A datetime in the mailbox's zone: replies print wall-clock times without their offset."""
    return value.astimezone(mailbox.timezone) if isinstance(value, datetime) else value


def _usable_id(msg_id: str) -> bool:
    """An id that can be written as is: printable (UTF-8 under RFC 6532) and short enough for
    one line (RFC 5322 §2.1.1)."""
    return msg_id.isprintable() and len(msg_id) < MAX_ID_CHARS


def shorten(text: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when there is one in its
    second half, ending in an ellipsis; never between a character and its combining marks."""
    if len(text) <= limit:
        return text
    end = limit - 1
    space = text.rfind(" ", 0, end + 1)
    if space >= limit // 2:
        end = space
    while end > 0 and unicodedata.combining(text[end]):
        end -= 1
    return text[:end].rstrip(" ,;:-") + "\u2026"


def recipient_name(message: Message, sender: str) -> str:
    """The display name the sender gave its own address in From, Sender or Reply-To."""
    key = unwrap_srs(sender).lower()
    first = message.from_address
    candidates = [first] if first is not None else []
    for header in ("sender", "reply-to"):
        if message.has(header):
            candidates += message.addresses(header)
    for addr in candidates:
        if addr.name and unwrap_srs(addr.address).lower() == key:
            return addr.name
    return ""


def _references(message: Message) -> str | None:
    own = message.message_id
    if own is None or not _usable_id(own):
        return None
    previous = one_line(message.get("references") or "").split()
    ids = [i for i in previous if i.startswith("<") and i.endswith(">") and _usable_id(i)]
    return " ".join([*ids[-(MAX_REFERENCES - 1):], own])


def compose(message: Message, mailbox: Mailbox, rule: Rule, templates: Templates, *, language: str,
            sender: str, recipient: str, envelope_from: str, now: datetime,
            message_id: str) -> Reply:
    """Render `templates` for `message` and assemble the reply. Raises RenderError."""
    from_addr = message.from_address
    name = from_addr.name if from_addr is not None else ""
    local_now = now.astimezone(mailbox.timezone)
    subject = shorten(message.subject)

    def opening() -> str:
        when = next_change(rule.when, now, mailbox.timezone, to_active=False)
        return format_date(when, "full", language) if when is not None else ""

    variables: dict[str, object] = {
        "sender": SenderVars(sender, name, first_name(name)),
        "subject": subject,
        "mailbox": {"name": mailbox.name, "address": recipient,
                    "display_name": mailbox.display_name or ""},
        "rule": RuleVars(rule.name, _local(rule.when.start if rule.when else None, mailbox),
                         _local(rule.when.until if rule.when else None, mailbox)),
        "next_opening": _Lazy(opening),
        "ticket": ticket(message),
        "language": language,
        "now": local_now,
    }
    rendered_subject = shorten(_header_value("subject", render(templates.subject, variables)))
    text = render(templates.text, variables).replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    html = render(templates.html, variables) if templates.html is not None else None
    from_header = mailbox_header(mailbox.display_name or "", recipient)
    to_header = mailbox_header(recipient_name(message, sender), sender)
    headers: list[tuple[str, str]] = [
        ("From", from_header),
        ("To", to_header),
        ("Subject", rendered_subject or "Auto:"),
        ("Date", format_datetime(local_now)),
        ("Message-ID", message_id),
    ]
    if message.message_id is not None and _usable_id(message.message_id):
        headers.append(("In-Reply-To", message.message_id))
    refs = _references(message)
    if refs is not None:
        headers.append(("References", refs))
    headers += [
        ("Auto-Submitted", "auto-replied"),
        ("X-Auto-Response-Suppress", "All"),
        ("Precedence", "bulk"),
        ("X-Loop", recipient),
    ]
    if rule.reply_to:
        headers.append(("Reply-To", rule.reply_to))
    headers.append(("Content-Language", language))
    return Reply(envelope_from=envelope_from, envelope_to=sender, from_=from_header, to=to_header,
                 subject=rendered_subject, language=language, message_id=message_id,
                 headers=tuple(headers), text=text, html=html)


class _Lazy:
    """A template value computed only if the template prints it (next_opening scans a year)."""

    def __init__(self, compute: object) -> None:
        self._compute = compute
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            fn = self._compute
            assert callable(fn)
            self._value = str(fn())
        return self._value

    def __html__(self) -> str:
        from markupsafe import escape  # noqa: PLC0415

        return str(escape(str(self)))
