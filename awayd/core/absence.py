"""The owner's absence set from the command line, as a rule placed before the mailbox's own."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from awayd.config.model import Mailbox, Rule, Templates, When
from awayd.core.schedule import _end_instant, _start_instant
from awayd.core.templates import compile_template

#: The name the absence's rule carries in decisions, logs, `explain` and `report`.
RULE_NAME = "owner-absence"
DEFAULT_INTERVAL = timedelta(days=7)
DEFAULT_SUBJECT = "Auto: {{ subject }}"
#: Used when neither `--text` nor a `kind: absence` rule of the mailbox gives a text.
DEFAULT_TEXT = (
    "Hello {{ sender.first_name }},\n\n"
    "I am away until {{ rule.until | date('long') }} and will read your message when I am back.\n"
)


@dataclass(frozen=True)
class OwnerAbsence:
    """One mailbox's absence: dates are whole local days of its time zone, `until` inclusive;
    datetimes carry their zone. `text` is a template source that replaces the borrowed one."""

    mailbox: str
    start: date | datetime
    until: date | datetime
    created_at: datetime
    text: str | None = None
    reply_to: str | None = None
    templates: Templates | None = field(default=None, compare=False, repr=False)

    @property
    def handle(self) -> str:
        """History key: a new `awayd away` starts a new period, as an edited rule text does."""
        digest = hashlib.sha256(
            f"{self.start}\x00{self.until}\x00{self.created_at.isoformat()}\x00{self.text or ''}"
            .encode()).hexdigest()[:12]
        return f"{RULE_NAME}:{digest}"


def span(start: date | datetime, until: date | datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The first instant of `start` and the first instant after `until` (dates are local days)."""
    return _start_instant(start, tz), _end_instant(until, tz)


def compile_text(source: str) -> Templates:
    """Templates for a `--text` source (default subject). Raises jinja2.TemplateSyntaxError."""
    return Templates(compile_template(DEFAULT_SUBJECT), compile_template(source), None,
                     f"{DEFAULT_SUBJECT}\x00{source}\x00")


def make_absence(mailbox: str, start: date | datetime, until: date | datetime, created_at: datetime,
                 *, text: str | None = None, reply_to: str | None = None) -> OwnerAbsence:
    """An OwnerAbsence with its text compiled. Raises jinja2.TemplateSyntaxError."""
    templates = compile_text(text) if text is not None else None
    return OwnerAbsence(mailbox, start, until, created_at, text, reply_to, templates)


def template_rule(mailbox: Mailbox) -> Rule | None:
    """The rule an absence borrows from: the mailbox's first unconditional `kind: absence` rule."""
    for rule in mailbox.rules:
        if rule.kind == "absence" and rule.match is None:
            return rule
    return None


_DEFAULT_TEMPLATES = compile_text(DEFAULT_TEXT)


def absence_rule(mailbox: Mailbox, absence: OwnerAbsence) -> Rule:
    """The rule the absence acts as.

    Its schedule is the absence's dates. Audience, interval, reply-to and texts (with their
    translations) come from the template rule; `--text` replaces the texts (without
    translations) and `--reply-to` the reply-to. Without a template rule: audience everyone,
    interval 7d, the built-in English text.
    """
    base = template_rule(mailbox)
    translations: tuple[tuple[str, Templates], ...]
    if absence.templates is not None:
        templates, translations = absence.templates, ()
    elif base is not None:
        templates, translations = base.templates, base.translations
    else:
        templates, translations = _DEFAULT_TEMPLATES, ()
    return Rule(
        name=RULE_NAME,
        kind="absence",
        when=When(absence.start, absence.until),
        match=None,
        audience=base.audience if base is not None else "everyone",
        interval=base.interval if base is not None else DEFAULT_INTERVAL,
        reply_to=absence.reply_to or (base.reply_to if base is not None else None),
        templates=templates,
        translations=translations,
        handle=absence.handle,
    )


def with_absence(mailbox: Mailbox, absence: OwnerAbsence | None) -> Mailbox:
    """The mailbox as decide() sees it: the absence's rule first, then the configured rules."""
    if absence is None or absence.mailbox != mailbox.name:
        return mailbox
    return replace(mailbox, rules=(absence_rule(mailbox, absence), *mailbox.rules))
