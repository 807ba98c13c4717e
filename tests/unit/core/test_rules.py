"""Tests for awayd.core.rules: conditions, schedule and audience pick the rule (guards 21-23)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from awayd.config.model import Mailbox
from awayd.core.guards import envelope, sender_of
from awayd.core.message import parse
from awayd.core.rules import Selection, audience_ok, select

RULES = """
mailboxes:
  - name: alice
    address: alice@example.org
    aliases: [devis@example.org, team@example.org, night@example.org]
    timezone: Europe/Paris
    internal_domains: [example.org]
    contacts: contacts.txt
    rules:
      - name: quotes
        match: {to: [devis@example.org], subject: "(?i)devis|quote", from_domain: [client.example]}
        text: quote
      - name: team
        match: {to: [team@example.org]}
        audience: internal
        text: team
      - name: night
        match: {to: [night@example.org]}
        when: {weekly: [{days: mon-fri, inside: "20:00-23:00"}]}
        text: night
      - name: holidays
        match: {to: [alice@example.org]}
        when: {from: 2026-12-20, until: 2027-01-04}
        audience: external
        text: holidays
      - name: friends
        match: {to: [alice@example.org]}
        audience: contacts
        text: friends
"""

#: Tuesday 22 December 2026 10:00 in Paris.
IN_HOLIDAYS = datetime(2026, 12, 22, 9, 0, tzinfo=UTC)
#: Tuesday 1 December 2026 10:00 in Paris.
BEFORE_HOLIDAYS = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory, make_mailbox) -> Mailbox:
    base: Path = tmp_path_factory.mktemp("rules")
    (base / "contacts.txt").write_text("carol@partner.example\n", encoding="utf-8")
    return make_mailbox(RULES, base)


def pick(mailbox: Mailbox, raw: bytes, now: datetime = IN_HOLIDAYS) -> Selection:
    message = parse(raw)
    env = envelope(message, mailbox, sender_of(message, mailbox))
    return select(message, mailbox, env, now)


def test_no_rule_when_no_rule_conditions_match(mailbox, eml) -> None:
    selection = pick(mailbox, eml(to="someone@example.com, alice-not@example.org"))
    assert (selection.rule, selection.reason) == (None, "no-rule")


def test_conditional_rule_needs_every_condition(mailbox, eml) -> None:
    quote = dict(return_path="<buyer@shop.client.example>", to="devis@example.org")
    assert pick(mailbox, eml(subject="Demande de DEVIS", **quote)).reason == "reply"
    assert pick(mailbox, eml(subject="Need a quote", **quote)).rule.name == "quotes"
    assert pick(mailbox, eml(subject="Bonjour", **quote)).reason == "no-rule"
    other_domain = eml(subject="devis", return_path="<b@other.example>", to="devis@example.org")
    assert pick(mailbox, other_domain).reason == "no-rule"


def test_match_subject_is_searched_in_the_decoded_subject(mailbox, eml) -> None:
    raw = eml(subject="=?utf-8?q?Votre_devis_n=C2=B05?=", return_path="<b@client.example>",
              to="devis@example.org")
    assert pick(mailbox, raw).rule.name == "quotes"


def test_match_to_uses_the_delivered_to_alias(mailbox, eml) -> None:
    raw = eml(to="undisclosed-recipients:;", return_path="<b@client.example>", subject="devis",
              extra=("Delivered-To: devis@example.org",))
    assert pick(mailbox, raw).rule.name == "quotes"


def test_match_from_domain_uses_the_srs_unwrapped_sender(mailbox, eml) -> None:
    raw = eml(to="devis@example.org", subject="devis",
              return_path="<SRS0=h=TT=client.example=b@forwarder.example>")
    assert pick(mailbox, raw).rule.name == "quotes"


def test_outside_schedule_when_only_the_weekly_window_failed(mailbox, eml) -> None:
    raw = eml(to="night@example.org")
    selection = pick(mailbox, raw)  # Tuesday 10:00, window 20:00-23:00
    assert selection.reason == "outside-schedule"
    assert selection.rule is not None
    assert selection.rule.name == "night"
    evening = datetime(2026, 12, 22, 20, 30, tzinfo=UTC)  # 21:30 in Paris
    assert pick(mailbox, raw, evening).reason == "reply"


def test_no_rule_when_the_dated_range_is_not_active(mailbox, eml) -> None:
    raw = eml(to="alice@example.org", return_path="<bob@example.net>")
    before = pick(mailbox, raw, BEFORE_HOLIDAYS)
    # holidays has not begun, friends is active but bob is not a contact
    assert before.reason == "audience"
    assert before.rule is not None
    assert before.rule.name == "friends"


def test_no_rule_names_the_rule_that_is_not_active(make_mailbox, eml) -> None:
    mailbox = make_mailbox("""
mailboxes:
  - name: a
    address: alice@example.org
    rules: [{name: later, when: {from: 2027-06-01}, text: x}]
""")
    selection = pick(mailbox, eml(), IN_HOLIDAYS)
    assert selection.reason == "no-rule"
    assert "later" in selection.detail
    assert "not started" in selection.detail


def test_first_active_rule_with_a_matching_audience_wins(mailbox, eml) -> None:
    external = eml(to="alice@example.org", return_path="<bob@example.net>")
    assert pick(mailbox, external).rule.name == "holidays"
    contact_inside = eml(to="alice@example.org", return_path="<carol@partner.example>")
    assert pick(mailbox, contact_inside).rule.name == "holidays"
    colleague_contact = eml(to="alice@example.org", return_path="<dan@example.org>")
    assert pick(mailbox, colleague_contact).reason == "audience"


def test_audience_internal_refuses_external_senders(mailbox, eml) -> None:
    assert pick(mailbox, eml(to="team@example.org", return_path="<bob@example.net>")).reason \
        == "audience"
    assert pick(mailbox, eml(to="team@example.org", return_path="<dan@example.org>")).reason \
        == "reply"
    assert pick(mailbox, eml(to="team@example.org", return_path="<dan@paris.example.org>")) \
        .reason == "reply"


def test_audience_contacts_uses_the_lowercased_contact_list(mailbox, eml) -> None:
    raw = eml(to="alice@example.org", return_path="<Carol@Partner.example>")
    assert pick(mailbox, raw, BEFORE_HOLIDAYS).rule.name == "friends"


@pytest.mark.parametrize(
    ("audience", "sender", "ok"),
    [
        ("everyone", "x@anywhere.example", True),
        ("internal", "x@example.org", True),
        ("internal", "x@sub.example.org", True),
        ("internal", "x@notexample.org", False),
        ("external", "x@example.org", False),
        ("external", "x@example.net", True),
        ("contacts", "carol@partner.example", True),
        ("contacts", "dave@partner.example", False),
    ],
)
def test_audience_ok(mailbox, audience: str, sender: str, ok: bool) -> None:
    rule = next(r for r in mailbox.rules if r.audience == audience) if audience != "everyone" \
        else mailbox.rules[0]
    assert audience_ok(rule, mailbox, sender) is ok


def test_rule_order_decides_between_two_active_rules(make_mailbox, eml) -> None:
    mailbox = make_mailbox("""
mailboxes:
  - name: a
    address: alice@example.org
    rules: [{name: first, text: one}, {name: second, text: two}]
""")
    assert pick(mailbox, eml()).rule.name == "first"


def test_decide_reports_rule_reasons(mailbox, eml, run) -> None:
    assert run(eml(to="alice@example.org, other@example.com", extra=("Cc: x@example.com",)),
               mailbox).reason == "reply"
    assert run(eml(to="night@example.org"), mailbox).reason == "outside-schedule"
    assert run(eml(to="team@example.org"), mailbox).reason == "audience"
    assert run(eml(to="team@example.org"), mailbox).rule_name == "team"


def test_mail_sent_only_to_an_alias_does_not_match_a_rule_for_the_address(make_mailbox,
                                                                         eml) -> None:
    """Without Delivered-To the reply comes from the address, but that is no match for `to`."""
    mailbox = make_mailbox("""
mailboxes:
  - name: a
    address: alice@example.org
    aliases: [team@example.org]
    rules: [{name: personal, match: {to: [alice@example.org]}, text: x}]
""")
    assert pick(mailbox, eml(to="team@example.org")).reason == "no-rule"
    assert pick(mailbox, eml(to="team@example.org, alice@example.org")).reason == "reply"
    delivered = eml(to="undisclosed-recipients:;", extra=("Delivered-To: alice@example.org",))
    assert pick(mailbox, delivered).reason == "reply"
