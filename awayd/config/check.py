"""What `awayd check` prints: a trial render of every template and a per-mailbox summary."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from awayd.config.model import Config, Mailbox, Rule, Templates
from awayd.config.read import show_duration
from awayd.core.compose import compose
from awayd.core.i18n import format_date
from awayd.core.message import Message, parse
from awayd.core.schedule import State, next_change, state
from awayd.core.templates import compile_template
from awayd.errors import RenderError

_SAMPLE = (
    b"Return-Path: <marie.dupont@example.net>\r\n"
    b"From: Marie Dupont <marie.dupont@example.net>\r\n"
    b"To: {to}\r\nSubject: Rendez-vous =?UTF-8?Q?=C3=A0?= Lyon\r\n"
    b"Message-ID: <sample.1@example.net>\r\nDate: Mon, 21 Dec 2026 09:00:00 +0100\r\n\r\nBonjour\r\n"
)
_SAMPLE_NOW = datetime(2026, 12, 21, 12, 0, tzinfo=UTC)


def trial_render(mailbox: Mailbox, rule: Rule) -> list[tuple[str, str]]:
    """Render every template of `rule` once against a sample message.

    Returns (key below the rule, message) for each failure: `text`, `translations.en.subject`;
    an empty key when only the templates together fail.
    """
    sample = parse(_SAMPLE.replace(b"{to}", mailbox.address.encode()))
    problems: list[tuple[str, str]] = []
    variants = [(mailbox.language, rule.templates, ""), *(
        (lang, t, f"translations.{lang}.") for lang, t in rule.translations)]
    for lang, templates, prefix in variants:
        error = _render_error(sample, mailbox, rule, templates, lang)
        if error is None:
            continue
        found = False
        for key in ("subject", "text", "html"):
            if getattr(templates, key) is None:
                continue
            alone = _render_error(sample, mailbox, rule, _only(templates, key), lang)
            if alone is not None:
                problems.append((prefix + key, alone))
                found = True
        if not found:
            problems.append((prefix.rstrip("."), error))
    return problems


_BLANK = compile_template("")


def _only(templates: Templates, key: str) -> Templates:
    """`templates` with every template but `key` blanked, to tell which one fails."""
    return Templates(subject=templates.subject if key == "subject" else _BLANK,
                     text=templates.text if key == "text" else _BLANK,
                     html=templates.html if key == "html" else None,
                     source=templates.source)


def _render_error(sample: Message, mailbox: Mailbox, rule: Rule, templates: Templates,
                  language: str) -> str | None:
    try:
        compose(sample, mailbox, rule, templates, language=language,
                sender="marie.dupont@example.net", recipient=mailbox.address,
                envelope_from="", now=_SAMPLE_NOW,
                message_id=f"<awayd.check@{mailbox.address.rpartition('@')[2]}>")
    except RenderError as err:
        return str(err).removeprefix("template failed: ")
    return None


def rule_warnings(config: Config, now: datetime) -> list[tuple[str, str]]:
    """(path, message) for each rule that ended before `now`: valid, but it will never answer."""
    warnings: list[tuple[str, str]] = []
    for i, mb in enumerate(config.mailboxes):
        for j, rule in enumerate(mb.rules):
            if rule.when is not None and state(rule.when, now, mb.timezone) is State.AFTER:
                warnings.append((f"mailboxes[{i}].rules[{j}].when.until",
                                 f"rule {rule.name} of mailbox {mb.name} ended on "
                                 f"{rule.when.until}: it will never answer again"))
    return warnings


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
    if len(config.sources) > 1:
        lines += [f"  {s.count} mailbox(es) {s.label}" for s in config.sources]
    lines += [f"note: {note}" for note in config.notes]
    if config.push is not None:
        pushed = sum(1 for m in config.mailboxes if m.imap is not None and m.imap.push)
        lines.append(f"push endpoint {config.push.listen} for {pushed} mailbox(es), token from "
                     f"{config.push.token.describe()}, sweep every "
                     f"{show_duration(config.push.sweep_interval)}")
    for mb in config.mailboxes:
        lines.append(f"mailbox {mb.name}: {mb.address}"
                     + (f" (aliases {', '.join(mb.aliases)})" if mb.aliases else ""))
        if mb.subaddress_separator:
            local, _, domain = mb.address.partition("@")
            lines.append(f"  sub-addresses such as {local}{mb.subaddress_separator}x@{domain} "
                         "are this mailbox too")
        lines.append(f"  time zone {mb.timezone.key}, language {mb.language}, "
                     f"local time {format_date(now.astimezone(mb.timezone), 'full', 'en')}")
        if mb.imap is not None:
            mode = "IDLE" if mb.imap.idle else f"poll every {show_duration(mb.imap.poll_interval)}"
            if mb.imap.push:
                mode = "push events and the sweep"
            via = f" through master user {mb.imap.master_user}" if mb.imap.master_user else ""
            lines.append(f"  imap {mb.imap.host}:{mb.imap.port} ({mb.imap.tls.security}) as "
                         f"{mb.imap.username}{via}, folders {', '.join(mb.imap.folders)}, {mode}")
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
