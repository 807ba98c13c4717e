"""Tests for awayd.core.absence: the owner's absence acts as a rule placed first."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from jinja2 import TemplateSyntaxError

from awayd.config.model import Mailbox
from awayd.core.absence import (
    RULE_NAME,
    OwnerAbsence,
    absence_rule,
    make_absence,
    span,
    with_absence,
)
from awayd.core.decide import Decision, decide
from awayd.core.history import EmptyHistory, HistoryView, MemoryHistory
from tests.unit.core.conftest import NOW, Builder, MailboxFactory

CONFIG = """
mailboxes:
  - name: alice
    address: alice@example.org
    timezone: Europe/Paris
    language: fr
    internal_domains: [example.org]
    rules:
      - name: quotes
        match: {subject: "(?i)devis"}
        text: "Devis bien reçu."
      - name: ack
        kind: acknowledgement
        text: "Bien reçu."
      - name: holidays
        when: {from: 2027-07-01, until: 2027-07-31}
        audience: external
        interval: 3d
        reply_to: Bob Martin <bob@example.org>
        text: "Bonjour {{ sender.first_name }}, absente jusqu'au {{ rule.until | date('long') }}."
        translations:
          en: {text: "Hello {{ sender.first_name }}, away until {{ rule.until | date('long') }}."}
"""

BARE = """
mailboxes:
  - name: bob
    address: bob@example.org
    timezone: Europe/Paris
    rules: [{name: ack, kind: acknowledgement, text: "Received."}]
"""

CREATED = datetime(2026, 12, 20, 8, 0, tzinfo=UTC)


def decide_with(raw: bytes, mailbox: Mailbox, absence: OwnerAbsence, *, now: datetime = NOW,
                history: HistoryView | None = None) -> Decision:
    return decide(raw, mailbox, now=now, history=history or EmptyHistory(),
                  new_message_id=lambda d: f"<t@{d}>", absence=absence)


def test_absence_borrows_audience_interval_reply_to_and_texts_of_the_first_absence_rule(
    make_mailbox: MailboxFactory,
) -> None:
    mailbox = make_mailbox(CONFIG)
    rule = absence_rule(mailbox, make_absence("alice", date(2026, 12, 21), date(2026, 12, 24), CREATED))
    holidays = mailbox.rules[2]
    assert rule.name == RULE_NAME
    assert (rule.audience, rule.interval, rule.reply_to) == (
        "external", timedelta(days=3), "Bob Martin <bob@example.org>")
    assert rule.templates is holidays.templates
    assert rule.translations == holidays.translations
    assert rule.when is not None
    assert (rule.when.start, rule.when.until) == (date(2026, 12, 21), date(2026, 12, 24))


def test_text_and_reply_to_options_replace_the_borrowed_ones(
    make_mailbox: MailboxFactory, eml: Builder
) -> None:
    mailbox = make_mailbox(CONFIG)
    absence = make_absence("alice", date(2026, 12, 21), date(2026, 12, 24), CREATED,
                           text="Out until {{ rule.until | date('iso') }}.", reply_to="carol@example.org")
    decision = decide_with(eml(from_="Bob <bob@example.net>"), mailbox, absence)
    assert decision.reason == "reply"
    assert decision.rule_name == RULE_NAME
    assert decision.reply is not None
    assert decision.reply.text == "Out until 2026-12-24.\n"
    assert ("Reply-To", "carol@example.org") in decision.reply.headers


def test_active_absence_is_placed_before_every_configured_rule(
    make_mailbox: MailboxFactory, eml: Builder
) -> None:
    mailbox = make_mailbox(CONFIG)
    absence = make_absence("alice", date(2026, 12, 21), date(2026, 12, 24), CREATED)
    decision = decide_with(eml(subject="Devis"), mailbox, absence)
    assert decision.rule_name == RULE_NAME
    assert decision.reply is not None
    assert decision.reply.text.startswith("Bonjour Bob, absente jusqu'au 24 décembre 2026.")
    assert with_absence(mailbox, absence).rules[1:] == mailbox.rules


def test_outside_its_dates_the_configured_rules_apply(make_mailbox: MailboxFactory, eml: Builder) -> None:
    mailbox = make_mailbox(CONFIG)
    over = make_absence("alice", date(2026, 12, 1), date(2026, 12, 21), CREATED)  # NOW is the 22nd
    later = make_absence("alice", date(2026, 12, 23), date(2026, 12, 24), CREATED)
    for absence in (over, later):
        assert decide_with(eml(), mailbox, absence).rule_name == "ack"


def test_until_is_an_inclusive_local_day() -> None:
    paris = make_absence("alice", date(2026, 12, 21), date(2026, 12, 24), CREATED)
    start, end = span(paris.start, paris.until, ZoneInfo("Europe/Paris"))
    assert start == datetime(2026, 12, 20, 23, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 24, 23, 0, tzinfo=UTC)


def test_absence_audience_from_the_borrowed_rule_skips_internal_senders(
    make_mailbox: MailboxFactory, eml: Builder
) -> None:
    mailbox = make_mailbox(CONFIG)
    absence = make_absence("alice", date(2026, 12, 21), date(2026, 12, 24), CREATED)
    raw = eml(return_path="<carol@example.org>", from_="Carol <carol@example.org>")
    decision = decide_with(raw, mailbox, absence)
    assert decision.rule_name == "ack"  # the absence's audience is external: the next rule answers


def test_without_an_absence_rule_the_builtin_text_answers_everyone_weekly(
    make_mailbox: MailboxFactory, eml: Builder
) -> None:
    mailbox = make_mailbox(BARE)
    absence = make_absence("bob", date(2026, 12, 21), date(2027, 1, 4), CREATED)
    rule = absence_rule(mailbox, absence)
    assert (rule.audience, rule.interval) == ("everyone", timedelta(days=7))
    decision = decide_with(eml(to="bob@example.org", from_="<x@example.net>"), mailbox, absence)
    assert decision.reply is not None
    assert decision.reply.text.startswith("Hello,\n\nI am away until January 4, 2027")


def test_history_is_kept_per_absence_so_a_new_away_starts_a_new_period(
    make_mailbox: MailboxFactory, eml: Builder
) -> None:
    mailbox = make_mailbox(CONFIG)
    first = make_absence("alice", date(2026, 12, 21), date(2026, 12, 24), CREATED)
    again = make_absence("alice", date(2026, 12, 21), date(2026, 12, 24), CREATED + timedelta(hours=1))
    history = MemoryHistory()
    history.add_reply("alice", "bob@example.net", first.handle, NOW - timedelta(hours=1))
    assert decide_with(eml(), mailbox, first, history=history).reason == "already-replied"
    assert decide_with(eml(), mailbox, again, history=history).reason == "reply"
    assert first.handle != again.handle


def test_an_absence_of_another_mailbox_changes_nothing(make_mailbox: MailboxFactory) -> None:
    mailbox = make_mailbox(CONFIG)
    absence = make_absence("bob", date(2026, 12, 21), date(2026, 12, 24), CREATED)
    assert with_absence(mailbox, absence) is mailbox


def test_a_text_that_does_not_compile_is_refused() -> None:
    with pytest.raises(TemplateSyntaxError):
        make_absence("alice", date(2026, 12, 21), date(2026, 12, 24), CREATED, text="{{ oops")
