"""A mailbox's rules: schedule, match, audience, interval and the compiled reply texts."""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime
from typing import cast
from zoneinfo import ZoneInfo

from jinja2 import Template, TemplateSyntaxError

from awayd.config import read as cr
from awayd.config.model import Audience, Match, Rule, RuleKind, Templates, WeeklyWindow, When
from awayd.config.read import Node
from awayd.config.rules import ends_before_start, report_undeclared
from awayd.core.templates import compile_template

DEFAULT_SUBJECT = "Auto: {{ subject }}"
AUDIENCES = ("everyone", "external", "internal", "contacts")
KINDS = ("absence", "acknowledgement")
RULE_KEYS = frozenset({"name", "kind", "when", "match", "audience", "interval", "reply_to",
                       "subject", "text", "html", "translations"})
WHEN_KEYS = frozenset({"from", "until", "weekly"})
WEEKLY_KEYS = frozenset({"days", "inside", "outside"})
MATCH_KEYS = frozenset({"to", "subject", "from_domain"})
TEMPLATE_KEYS = frozenset({"subject", "text", "html"})


def _templates(node: Node, base_subject: str) -> Templates | None:
    subject = node.get("subject", cr.as_str, "a template string", base_subject)
    text = node.require("text", cr.as_str, "a template string (the reply text)")
    html = node.get("html", cr.as_str, "a template string or null", None)
    if "\n" in subject.strip() or "\r" in subject:
        node.problems.add(node.sub("subject"), "one line", subject)
    compiled: list[Template | None] = []
    for key, source, is_html in (("subject", subject, False), ("text", text, False),
                                 ("html", html, True)):
        if source is None:
            compiled.append(None)
            continue
        try:
            compiled.append(compile_template(source, html=is_html))
        except TemplateSyntaxError as err:
            node.problems.add(node.sub(key), "a valid template", f"line {err.lineno}: {err.message}")
            compiled.append(None)
            continue
        if report_undeclared(node, key, source, html=is_html):
            compiled[-1] = None
    subject_t, text_t, html_t = compiled
    if subject_t is None or text_t is None or (html is not None and html_t is None):
        return None
    return Templates(subject_t, text_t, html_t, "\x00".join((subject, text or "", html or "")))


def _when(node: Node, tz: ZoneInfo) -> When:
    node.reject_unknown(WHEN_KEYS)
    expected = "a date (2026-12-20) or a datetime with a zone (2026-12-20T09:00:00+01:00)"

    def point(key: str) -> date | datetime | None:
        value = node.get(key, cr.as_date_or_datetime, expected, None)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=tz)  # a naive datetime is the mailbox's local time
        return value

    start, until = point("from"), point("until")
    if start is not None and until is not None and ends_before_start(start, until, tz):
        node.problems.add(node.sub("until"), "a day or time on or after `from`", str(until))
    weekly: list[WeeklyWindow] = []
    for w in node.children("weekly"):
        w.reject_unknown(WEEKLY_KEYS)
        days = w.get("days", cr.as_day_set, "days such as mon-fri or [sat, sun]",
                     frozenset(range(7)))
        if w.has("inside") and w.has("outside"):
            w.problems.add(w.path, "either inside or outside", "both")
        key = "outside" if w.has("outside") else "inside"
        ranges = w.get(key, cr.as_time_ranges, 'a range "HH:MM-HH:MM" or a list of them', ())
        weekly.append(WeeklyWindow(days, ranges, outside=key == "outside"))
    return When(start, until, tuple(weekly))


def _match(node: Node) -> Match:
    node.reject_unknown(MATCH_KEYS)
    pattern = node.get("subject", cr.as_str, "a regular expression", "")
    regex = None
    if pattern:
        try:
            regex = re.compile(pattern)
        except re.error as err:
            node.problems.add(node.sub("subject"), "a valid regular expression", f"{pattern!r}: {err}")
    to = node.get("to", lambda v: tuple(cr.as_address(a) for a in cr.as_str_list(v)),
                  "a list of addresses", ())
    domains = node.get("from_domain", cr.as_str_list, "a list of domains", ())
    return Match(frozenset(to), regex, frozenset(d.lower().lstrip("@") for d in domains))


def parse_rule(node: Node, mailbox_tz: ZoneInfo, mailbox_language: str) -> Rule | None:
    node.reject_unknown(RULE_KEYS)
    name = node.require("name", cr.as_str, "a rule name") or "?"
    kind = node.get("kind", cr.as_str, " | ".join(KINDS), "absence")
    if kind not in KINDS:
        node.problems.add(node.sub("kind"), " | ".join(KINDS), kind)
    audience = node.get("audience", cr.as_str, " | ".join(AUDIENCES), "everyone")
    if audience not in AUDIENCES:
        node.problems.add(node.sub("audience"), " | ".join(AUDIENCES), audience)
    when_node = node.child("when")
    match_node = node.child("match")
    reply_to = node.get("reply_to", cr.as_str, "an address, optionally with a name", "")
    if reply_to and not valid_mailbox_header(reply_to):
        node.problems.add(node.sub("reply_to"), "an address such as Bob Martin <bob@example.org>",
                          reply_to)
    base = _templates(node, DEFAULT_SUBJECT)
    translations: list[tuple[str, Templates]] = []
    tr = node.child("translations")
    if tr is not None:
        for lang in tr.data:
            sub = tr.child(str(lang), required=True)
            if sub is None:
                continue
            if not re.fullmatch(r"[a-z]{2,3}", str(lang)):
                sub.problems.add(sub.path, "a language code such as en or de", str(lang))
            sub.reject_unknown(TEMPLATE_KEYS)
            compiled = _templates(sub, DEFAULT_SUBJECT)
            if compiled is not None:
                translations.append((str(lang), compiled))
            if str(lang) == mailbox_language:
                sub.problems.note(sub.path, "the mailbox language uses the rule's own text; "
                                  "remove this translation or change the mailbox language")
    # parsed before giving up on a rule whose text failed, so their problems are reported too
    when = _when(when_node, mailbox_tz) if when_node is not None else None
    match = _match(match_node) if match_node is not None else None
    interval = node.get("interval", cr.as_duration, "a duration such as 7d (0 = every message)",
                        cr.as_duration("7d"))
    if base is None:
        return None
    digest = hashlib.sha256(
        "\x01".join([base.source, *(f"{lang}\x02{t.source}" for lang, t in translations)]).encode()
    ).hexdigest()[:12]
    return Rule(
        name=name,
        kind=cast(RuleKind, kind if kind in KINDS else "absence"),
        when=when,
        match=match,
        audience=cast(Audience, audience if audience in AUDIENCES else "everyone"),
        interval=interval,
        reply_to=reply_to or None,
        templates=base,
        translations=tuple(translations),
        handle=f"{name}:{digest}",
    )


def valid_mailbox_header(value: str) -> bool:
    from email.utils import parseaddr  # noqa: PLC0415

    if "\n" in value or "\r" in value:
        return False
    _name, addr = parseaddr(value)
    try:
        cr.as_address(addr)
    except (ValueError, TypeError):
        return False
    return True
