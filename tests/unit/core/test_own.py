"""Tests for awayd.core.own: the mailbox's own addresses, aliases and sub-addresses."""

from __future__ import annotations

import pytest

from awayd.core.own import answering, base_key, own_form, owns

MAILBOX = """
mailboxes:
  - name: alice
    address: alice@example.org
    aliases: [alice.smith@example.org, sales+eu@example.org]
    {extra}
    rules: [{{name: r, text: x}}]
"""


@pytest.fixture
def plus(make_mailbox):
    return make_mailbox(MAILBOX.format(extra=""))


@pytest.mark.parametrize(("written", "form"), [
    ("alice@example.org", "alice@example.org"),
    ("ALICE@Example.ORG", "alice@example.org"),
    ("alice+Conference@example.org", "alice+Conference@example.org"),
    ("Alice.Smith+x+y@EXAMPLE.org", "alice.smith+x+y@example.org"),
    ("sales+eu@example.org", "sales+eu@example.org"),
    ("sales+eu+de@example.org", "sales+eu+de@example.org"),
])
def test_own_addresses_come_back_in_the_configured_spelling(plus, written, form) -> None:
    assert own_form(plus, written) == form
    assert owns(plus, written)


@pytest.mark.parametrize("written", [
    "malice@example.org", "alice@example.org.evil", "alice@sub.example.org", "+alice@example.org",
    "alice-x@example.org", "sales+us@example.org", "sales@example.org", "alice", "",
])
def test_other_addresses_are_not_the_mailbox(plus, written) -> None:
    assert own_form(plus, written) is None
    assert not owns(plus, written)


def test_base_key_drops_the_detail(plus) -> None:
    assert base_key(plus, "Alice+Travel@example.org") == "alice@example.org"
    assert base_key(plus, "sales+eu+de@example.org") == "sales+eu@example.org"
    assert base_key(plus, "bob+x@example.org") is None


def test_separator_null_or_empty_turns_sub_addresses_off(make_mailbox) -> None:
    for value in ("null", '""'):
        mb = make_mailbox(MAILBOX.format(extra=f"subaddress_separator: {value}"))
        assert mb.subaddress_separator is None
        assert not owns(mb, "alice+x@example.org")
        assert owns(mb, "alice@example.org")


def test_a_longer_separator_is_honoured(make_mailbox) -> None:
    mb = make_mailbox(MAILBOX.format(extra='subaddress_separator: "--"'))
    assert own_form(mb, "alice--News@example.org") == "alice--News@example.org"
    assert not owns(mb, "alice+news@example.org")
    assert not owns(mb, "alice-news@example.org")


def test_answering_picks_the_first_written_address_the_rule_names(plus) -> None:
    written = ("sales+eu@example.org", "alice+trip@example.org", "alice.smith@example.org")
    assert answering(plus, written, frozenset({"alice@example.org"})) == "alice+trip@example.org"
    assert answering(plus, written, frozenset({"alice+trip@example.org"})) == "alice+trip@example.org"
    assert answering(plus, written, frozenset({"bob@example.org"})) is None
