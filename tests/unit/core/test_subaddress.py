"""Sub-addresses (alice+x@) are the mailbox for every guard and rule that compares addresses."""

from __future__ import annotations

import pytest

from awayd.core import reasons as r
from awayd.core.guards import envelope, sender_of
from awayd.core.message import parse

OFF = """
mailboxes:
  - name: alice
    address: alice@example.org
    aliases: [alice.smith@example.org]
    subaddress_separator: null
    rules: [{name: always, interval: 0, text: "Away."}]
"""

MATCH = """
mailboxes:
  - name: alice
    address: alice@example.org
    display_name: Alice
    rules:
      - {name: conference, match: {to: [alice+conference@example.org]}, interval: 0, text: "Conf."}
      - {name: personal, match: {to: [alice@example.org]}, interval: 0, text: "Away."}
"""


@pytest.mark.parametrize("sender", ["<alice+lists@example.org>", "<Alice.Smith+x@Example.org>",
                                    "<SRS0=h=TT=example.org=alice+x@forwarder.example>"])
def test_mail_from_a_sub_address_of_the_mailbox_is_self(eml, run, sender) -> None:
    assert run(eml(return_path=sender)).reason == r.SELF


def test_mail_to_a_sub_address_is_addressed_and_answered_from_it(eml, run) -> None:
    decision = run(eml(to="Alice <alice+Conference@example.org>"))
    assert decision.reason == r.REPLY
    assert decision.reply is not None
    assert decision.reply.from_ == "Alice Smith <alice+Conference@example.org>"
    assert decision.reply.header("Message-ID") == "<awayd.test@example.org>"


def test_x_loop_naming_a_sub_address_is_a_loop(eml, run) -> None:
    assert run(eml(extra=("X-Loop: alice+conference@example.org",))).reason == r.LOOP
    assert run(eml(extra=("X-Loop: malice+conference@example.org",))).reason == r.REPLY


def test_without_a_separator_sub_addresses_are_strangers(eml, run, make_mailbox) -> None:
    mb = make_mailbox(OFF)
    assert run(eml(to="alice+conference@example.org"), mb).reason == r.NOT_ADDRESSED
    assert run(eml(return_path="<alice+x@example.org>"), mb).reason == r.REPLY
    assert run(eml(extra=("X-Loop: alice+x@example.org",)), mb).reason == r.REPLY


def test_match_to_names_a_sub_address_or_the_address_for_all_of_them(eml, run, make_mailbox) -> None:
    mb = make_mailbox(MATCH)
    conference = run(eml(to="alice+conference@example.org"), mb)
    assert conference.rule_name == "conference"
    other = run(eml(to="alice+travel@example.org"), mb)
    assert other.rule_name == "personal"
    assert other.reply is not None
    assert other.reply.from_ == "Alice <alice+travel@example.org>"


def test_envelope_records_written_forms_and_their_base(permissive) -> None:
    message = parse(b"Return-Path: <bob@example.net>\r\nTo: bob@example.net, Alice+Trip@example.org\r\n"
                    b"Cc: alice.smith@example.org\r\nDelivered-To: alice@example.org\r\n\r\n")
    env = envelope(message, permissive, sender_of(message, permissive))
    assert env.written == ("alice+Trip@example.org", "alice.smith@example.org")
    assert env.reply_from == "alice+Trip@example.org"
    assert env.recipient == "alice@example.org"
    assert env.addressed == frozenset({"alice+trip@example.org", "alice@example.org",
                                       "alice.smith@example.org"})


def test_envelope_falls_back_to_the_delivery_address_when_none_is_written(permissive) -> None:
    message = parse(b"Return-Path: <bob@example.net>\r\nTo: list@example.com\r\n"
                    b"Delivered-To: alice@example.org\r\nX-Original-To: alice.smith+x@example.org\r\n\r\n")
    env = envelope(message, permissive, sender_of(message, permissive))
    assert env.written == ()
    assert env.reply_from == "alice.smith+x@example.org"
    bare = parse(b"Return-Path: <bob@example.net>\r\nTo: list@example.com\r\n\r\n")
    assert envelope(bare, permissive, "bob@example.net").reply_from == "alice@example.org"
