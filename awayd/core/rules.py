"""Pick the rule that answers a message: conditions, schedule, then audience (guards 21-23)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from awayd.config.model import Mailbox, Rule
from awayd.core import reasons as r
from awayd.core.guards import Envelope
from awayd.core.message import Message
from awayd.core.schedule import State, state


@dataclass(frozen=True)
class Selection:
    rule: Rule | None
    reason: str  # r.REPLY when a rule was chosen
    detail: str


def _in_domains(domain: str, domains: frozenset[str]) -> bool:
    return domain in domains or any(domain.endswith("." + d) for d in domains)


def conditions_hold(rule: Rule, message: Message, env: Envelope) -> bool:
    m = rule.match
    if m is None:
        return True
    # not env.recipient: without a Delivered-To it is the mailbox address, which would match
    # `to: [address]` for mail sent only to an alias
    if m.to and not env.addressed & m.to:
        return False
    if m.subject is not None and not m.subject.search(message.subject):
        return False
    sender_domain = env.sender_key.rpartition("@")[2]
    return not (m.from_domain and not _in_domains(sender_domain, m.from_domain))


def audience_ok(rule: Rule, mailbox: Mailbox, sender_key: str) -> bool:
    internal = _in_domains(sender_key.rpartition("@")[2], mailbox.internal_domains)
    if rule.audience == "internal":
        return internal
    if rule.audience == "external":
        return not internal
    if rule.audience == "contacts":
        return sender_key in mailbox.contacts
    return True


def select(message: Message, mailbox: Mailbox, env: Envelope, now: datetime) -> Selection:
    """The first rule whose conditions, schedule and audience all hold, or why none does."""
    candidates = [rule for rule in mailbox.rules if conditions_hold(rule, message, env)]
    if not candidates:
        return Selection(None, r.NO_RULE, "no rule's conditions match this message")
    states = [(rule, state(rule.when, now, mailbox.timezone)) for rule in candidates]
    active = [rule for rule, st in states if st is State.ACTIVE]
    if not active:
        closed = [rule for rule, st in states if st is State.CLOSED]
        if closed:
            return Selection(closed[0], r.OUTSIDE_SCHEDULE,
                             f"rule {closed[0].name!r}: its weekly window is closed now")
        rule, st = states[0]
        when = "has not started yet" if st is State.BEFORE else "is over"
        return Selection(None, r.NO_RULE, f"no rule is active now (rule {rule.name!r} {when})")
    for rule in active:
        if audience_ok(rule, mailbox, env.sender_key):
            return Selection(rule, r.REPLY, f"rule {rule.name!r} is active and matches")
    return Selection(active[0], r.AUDIENCE,
                     f"{env.sender_key} is outside the audience {active[0].audience!r} "
                     f"of rule {active[0].name!r}")
