"""What `awayd check` prints: a trial render of every template and a per-mailbox summary."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from awayd.configread import show_duration
from awayd.configtypes import Config, Mailbox, Rule
from awayd.core.compose import compose
from awayd.core.i18n import format_date
from awayd.core.message import parse
from awayd.core.schedule import State, next_change, state
from awayd.errors import RenderError

_SAMPLE = (
    b"Return-Path: <marie.dupont@example.net>\r\n"
    b"From: Marie Dupont <marie.dupont@example.net>\r\n"
    b"To: {to}\r\nSubject: Rendez-vous =?UTF-8?Q?=C3=A0?= Lyon\r\n"
    b"Message-ID: <sample.1@example.net>\r\nDate: Mon, 21 Dec 2026 09:00:00 +0100\r\n\r\nBonjour\r\n"
)
_SAMPLE_NOW = datetime(2026, 12, 21, 12, 0, tzinfo=UTC)


def trial_render(config: Config) -> list[str]:
    """Render every template once against a sample message; a failure is a config problem."""
    problems: list[str] = []
    for i, mb in enumerate(config.mailboxes):
        sample = parse(_SAMPLE.replace(b"{to}", mb.address.encode()))
        for j, rule in enumerate(mb.rules):
            variants = [(mb.language, rule.templates, ""), *(
                (lang, t, f".translations.{lang}") for lang, t in rule.translations)]
            for lang, templates, where in variants:
                try:
                    compose(sample, mb, rule, templates, language=lang,
                            sender="marie.dupont@example.net", recipient=mb.address,
                            envelope_from="", now=_SAMPLE_NOW,
                            message_id=f"<awayd.check@{mb.address.rpartition('@')[2]}>")
                except RenderError as err:
                    problems.append(f"mailboxes[{i}].rules[{j}]{where}: "
                                    f"expected a template that renders, found: {err}")
    return problems


def describe_rule(rule: Rule, mailbox: Mailbox, now: datetime) -> str:
    """One line: the rule and when it is, or next becomes, active in the mailbox's zone."""
    tz = mailbox.timezone
    st = state(rule.when, now, tz)
    if st is State.ACTIVE:
        until = next_change(rule.when, now, tz, to_active=False)
        when = "active now" + (f" until {until:%Y-%m-%d %H:%M %Z}" if until else "")
    elif st is State.AFTER:
        when = "ended (never active again)"
    else:
        start = next_change(rule.when, now, tz, to_active=True)
        when = f"next active {start:%Y-%m-%d %H:%M %Z}" if start else "never active"
    parts = [f"{rule.name} ({rule.kind}, audience {rule.audience}, interval {show_duration(rule.interval)})"]
    if rule.match is not None and rule.match.to:
        parts.append("to " + ", ".join(sorted(rule.match.to)))
    if rule.translations:
        parts.append("languages " + ", ".join([mailbox.language, *(lang for lang, _ in rule.translations)]))
    return "; ".join(parts) + f": {when}"


def summary(config: Config, now: datetime, absences: Mapping[str, str] | None = None) -> str:
    """`absences` maps a mailbox name to the description of its owner absence (`awayd away`)."""
    from awayd.adapters.store_api import backend_name, state_name  # noqa: PLC0415

    lines = [f"{config.source}: OK, {len(config.mailboxes)} mailbox(es), state "
             f"{state_name(config.state)} ({backend_name(config.state)})"]
    for mb in config.mailboxes:
        lines.append(f"mailbox {mb.name}: {mb.address}"
                     + (f" (aliases {', '.join(mb.aliases)})" if mb.aliases else ""))
        lines.append(f"  time zone {mb.timezone.key}, language {mb.language}, "
                     f"local time {format_date(now.astimezone(mb.timezone), 'full', 'en')}")
        if mb.imap is not None:
            mode = "IDLE" if mb.imap.idle else f"poll every {show_duration(mb.imap.poll_interval)}"
            lines.append(f"  imap {mb.imap.host}:{mb.imap.port} ({mb.imap.tls.security}) as "
                         f"{mb.imap.username}, folders {', '.join(mb.imap.folders)}, {mode}")
        if mb.smtp is not None:
            lines.append(f"  smtp {mb.smtp.host}:{mb.smtp.port} ({mb.smtp.tls.security}), "
                         f"envelope from <{mb.smtp.envelope_from}>")
        if absences and mb.name in absences:
            lines.append("  " + absences[mb.name])
        if not mb.rules:
            lines.append("  no rules: nothing will ever be answered")
        for rule in mb.rules:
            lines.append("  rule " + describe_rule(rule, mb, now))
    return "\n".join(lines)
