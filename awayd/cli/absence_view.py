"""What `status`, `check` and `report` say about owner absences: the rule active now, the next change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from awayd.config.model import Config, Mailbox, StateSettings
from awayd.core.absence import OwnerAbsence, template_rule, with_absence
from awayd.core.schedule import State, next_change, state
from awayd.errors import StateError


def read_absences(state: Path | StateSettings) -> tuple[dict[str, OwnerAbsence], str | None]:
    """The stored absences, read-only; never creates the state file.

    Returns the absences and, when none could be read, why: None when the file simply does not
    exist yet (the daemon never ran), else the error, for the caller to show.
    """
    from awayd.adapters.store_absence import read_absences as read_rows  # noqa: PLC0415
    from awayd.adapters.store_api import NoStateYet, open_store, state_exists  # noqa: PLC0415

    settings = state if isinstance(state, StateSettings) else StateSettings(path=state)
    if not state_exists(settings):
        return {}, None
    try:
        with open_store(settings, readonly=True) as store:
            return read_rows(store.db), None
    except NoStateYet:
        return {}, None
    except StateError as err:
        return {}, str(err)


def show_point(value: date | datetime, mailbox: Mailbox) -> str:
    if isinstance(value, datetime):
        return f"{value.astimezone(mailbox.timezone):%Y-%m-%d %H:%M %Z}"
    return value.isoformat()


def text_source(absence: OwnerAbsence, mailbox: Mailbox) -> str:
    if absence.text is not None:
        return "its own text"
    base = template_rule(mailbox)
    return f"the texts of rule {base.name!r}" if base is not None else "the built-in text"


def describe_absence(absence: OwnerAbsence, mailbox: Mailbox, now: datetime) -> str:
    """One line: the dates (until inclusive), where the text comes from, and whether it is on."""
    from awayd.core.absence import absence_rule  # noqa: PLC0415

    rule = absence_rule(mailbox, absence)
    st = state(rule.when, now, mailbox.timezone)
    when = {State.ACTIVE: "active now", State.BEFORE: "not started yet",
            State.AFTER: "over"}.get(st, "closed")
    parts = [f"owner absence from {show_point(absence.start, mailbox)} until "
             f"{show_point(absence.until, mailbox)}", f"with {text_source(absence, mailbox)}"]
    if rule.reply_to:
        parts.append(f"reply-to {rule.reply_to}")
    return ", ".join(parts) + f": {when}"


@dataclass(frozen=True)
class MailboxStatus:
    mailbox: Mailbox
    absence: OwnerAbsence | None
    active: tuple[str, ...]  # rules whose schedule is open now, in order (conditions aside)
    next_change: datetime | None
    next_rule: str | None  # the rule whose state changes then

    def as_dict(self, now: datetime) -> dict[str, object]:
        absence = None
        if self.absence is not None:
            a = self.absence
            absence = {"from": a.start.isoformat(), "until": a.until.isoformat(),
                       "text": a.text, "reply_to": a.reply_to,
                       "created_at": a.created_at.isoformat(),
                       "active": "owner-absence" in self.active,
                       "summary": describe_absence(a, self.mailbox, now)}
        return {"mailbox": self.mailbox.name, "timezone": self.mailbox.timezone.key,
                "absence": absence, "active_rule": self.active[0] if self.active else None,
                "active_rules": list(self.active),
                "next_change": self.next_change.isoformat() if self.next_change else None,
                "next_change_rule": self.next_rule}


def mailbox_status(mailbox: Mailbox, absence: OwnerAbsence | None, now: datetime) -> MailboxStatus:
    """Which rules are on now (the absence first) and the next instant one turns on or off."""
    effective = with_absence(mailbox, absence)
    active: list[str] = []
    soonest: tuple[datetime, str] | None = None
    for rule in effective.rules:
        on = state(rule.when, now, mailbox.timezone) is State.ACTIVE
        if on:
            active.append(rule.name)
        change = next_change(rule.when, now, mailbox.timezone, to_active=not on)
        if change is not None and (soonest is None or change < soonest[0]):
            soonest = (change, rule.name)
    return MailboxStatus(mailbox, absence, tuple(active),
                         soonest[0] if soonest else None, soonest[1] if soonest else None)


def status_text(config: Config, absences: dict[str, OwnerAbsence], now: datetime) -> str:
    lines: list[str] = []
    for mb in config.mailboxes:
        st = mailbox_status(mb, absences.get(mb.name), now)
        local = now.astimezone(mb.timezone)
        lines.append(f"mailbox {mb.name} ({mb.address}), {mb.timezone.key}, "
                     f"local time {local:%Y-%m-%d %H:%M %Z}")
        if st.absence is not None:
            lines.append("  " + describe_absence(st.absence, mb, now))
        else:
            lines.append("  owner absence: none")
        lines.append("  active now: " + (", ".join(st.active) if st.active else "no rule"))
        if st.next_change is not None:
            lines.append(f"  next change: {st.next_change:%Y-%m-%d %H:%M %Z} (rule {st.next_rule})")
        else:
            lines.append("  next change: none within a year")
    return "\n".join(lines)
