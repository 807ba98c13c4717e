"""Tests for awayd.core.decide: history checks, and properties that hold for any input."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email import policy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awayd.core.decide import Decision, decide
from awayd.core.history import EmptyHistory, MemoryHistory

#: Tuesday 22 December 2026, 10:00 in Paris (as in conftest.py).
NOW = datetime(2026, 12, 22, 9, 0, tzinfo=UTC)
HEADER_LINE = re.compile(rb"^[\x21-\x39\x3b-\x7e]+:")
MIME_HEADERS = {"mime-version", "content-type", "content-transfer-encoding"}


def assert_clean_reply(decision: Decision) -> None:
    """A produced reply never carries CR/LF in a header and serialises to clean header lines."""
    assert decision.decision in ("reply", "skip")
    if decision.reply is None:
        assert decision.decision == "skip"
        return
    reply = decision.reply
    for name, value in reply.headers:
        assert "\r" not in value, (name, value)
        assert "\n" not in value, (name, value)
        assert len(value.splitlines()) <= 1, (name, value)
    for value in (reply.to, reply.from_, reply.subject, reply.envelope_to):
        assert "\r" not in value
        assert "\n" not in value
    data = reply.to_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert len(line) <= 998
        assert line[:1] in (b" ", b"\t") or HEADER_LINE.match(line), line
    parsed = email.message_from_bytes(data, policy=policy.default)
    expected = {name.lower() for name, _ in reply.headers} | MIME_HEADERS
    assert {name.lower() for name in parsed} <= expected
    assert len(parsed.get_all("To") or []) == 1
    assert parsed["Auto-Submitted"] == "auto-replied"


def _decide(raw: bytes, mailbox) -> Decision:
    return decide(raw, mailbox, now=NOW, history=EmptyHistory(),
                  new_message_id=lambda domain: f"<awayd.prop@{domain}>")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=2000))
def test_decide_never_raises_on_arbitrary_bytes(permissive, raw: bytes) -> None:
    assert_clean_reply(_decide(raw, permissive))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tail=st.binary(max_size=1000))
def test_decide_never_raises_on_arbitrary_bytes_after_valid_headers(permissive,
                                                                     tail: bytes) -> None:
    head = b"Return-Path: <bob@example.net>\r\nFrom: bob@example.net\r\nTo: alice@example.org\r\n"
    assert_clean_reply(_decide(head + tail, permissive))


NAMES = st.sampled_from([
    "Return-Path", "From", "To", "Cc", "Subject", "Message-ID", "References", "In-Reply-To",
    "Content-Language", "Delivered-To", "X-Original-To", "Sender", "Content-Type", "Received",
    "Date", "X-Loop", "Auto-Submitted", "Content-Transfer-Encoding",
]) | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
             min_size=1, max_size=12)

FRAGMENTS = st.sampled_from([
    "=?utf-8?q?a=0D=0Ab?=", "=?utf-8?q?=0D=0AX-Injected:_1?=", "=?utf-8?b?4oCo?=",
    "=?iso-8859-1?q?=E9t=E9?=", "=?UTF-8?B?w6k=?=", "=?utf-8?q?", "?=", "=?", "\r\n", "\n", "\r",
    "\r\n ", "\x00", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "<", ">", "<>", "@",
    ",", ";", ":", '"', "\\", "(", ")", " ", "\t", "é", "日本", "🎉", "alice@example.org",
    "bob@example.net", "Bob <bob@example.net>", "<id@example.net>", "x" * 120,
    "<" + "y" * 95 + "@example.net>",
]) | st.text(max_size=10)

VALUES = st.lists(FRAGMENTS, max_size=10).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=st.lists(st.tuples(NAMES, VALUES), max_size=12),
       prefix=st.booleans(), encoding=st.sampled_from(["utf-8", "latin-1"]))
def test_structured_junk_never_raises_and_never_puts_a_line_break_in_a_header(
    permissive, headers: list[tuple[str, str]], prefix: bool, encoding: str
) -> None:
    base = [("Return-Path", "<bob@example.net>"), ("From", "Bob <bob@example.net>"),
            ("To", "alice@example.org")] if prefix else []
    text = "".join(f"{name}: {value}\r\n" for name, value in base + headers) + "\r\nbody\r\n"
    raw = text.encode(encoding, "replace") if encoding == "latin-1" else text.encode("utf-8")
    assert_clean_reply(_decide(raw, permissive))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=st.text(max_size=300), name=st.text(max_size=60))
def test_any_subject_and_sender_name_serialise_cleanly(permissive, eml, subject: str,
                                                        name: str) -> None:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    raw = eml(subject=subject, from_=f'"{quoted}" <bob@example.net>')
    assert_clean_reply(_decide(raw, permissive))


def test_suppressed_sender_from_the_config(make_mailbox, run, eml) -> None:
    mailbox = make_mailbox("""
mailboxes:
  - name: a
    address: alice@example.org
    suppression: [optout@client.example, "@unsubscribed.example"]
    rules: [{name: r, text: x}]
""")
    assert run(eml(return_path="<OptOut@client.example>"), mailbox).reason == "suppressed"
    assert run(eml(return_path="<x@unsubscribed.example>"), mailbox).reason == "suppressed"
    srs = "<SRS0=h=TT=unsubscribed.example=x@fwd.example>"
    assert run(eml(return_path=srs), mailbox).reason == "suppressed"
    assert run(eml(return_path="<other@client.example>"), mailbox).reason == "reply"


def test_suppressed_sender_from_the_store(permissive, run, eml) -> None:
    history = MemoryHistory()
    history.suppressed.add(("*", "bob@example.net"))
    assert run(eml(), history=history).reason == "suppressed"


def test_already_replied_within_the_interval(make_mailbox, run, eml, now) -> None:
    mailbox = make_mailbox("""
mailboxes:
  - {name: a, address: alice@example.org, rules: [{name: r, interval: 7d, text: x}]}
""")
    rule = mailbox.rules[0]
    recent = MemoryHistory()
    recent.add_reply("a", "bob@example.net", rule.handle, now - timedelta(days=6))
    old = MemoryHistory()
    old.add_reply("a", "bob@example.net", rule.handle, now - timedelta(days=8))
    edited = MemoryHistory()
    edited.add_reply("a", "bob@example.net", "r:another-text", now - timedelta(hours=1))
    assert run(eml(), mailbox, history=recent).reason == "already-replied"
    assert run(eml(), mailbox, history=old).reason == "reply"
    assert run(eml(), mailbox, history=edited).reason == "reply"


def test_already_replied_uses_the_srs_unwrapped_sender(make_mailbox, run, eml, now) -> None:
    mailbox = make_mailbox("""
mailboxes:
  - {name: a, address: alice@example.org, rules: [{name: r, text: x}]}
""")
    history = MemoryHistory()
    history.add_reply("a", "bob@client.example", mailbox.rules[0].handle, now - timedelta(days=1))
    raw = eml(return_path="<SRS0=h=TT=client.example=bob@fwd.example>")
    assert run(raw, mailbox, history=history).reason == "already-replied"


def test_interval_zero_answers_every_message(permissive, run, eml, now) -> None:
    history = MemoryHistory()
    history.add_reply("alice", "bob@example.net", permissive.rules[0].handle, now)
    assert run(eml(), history=history).reason == "reply"


def test_rate_limit_per_hour_and_per_day(make_mailbox, run, eml, now) -> None:
    mailbox = make_mailbox("""
mailboxes:
  - name: a
    address: alice@example.org
    max_replies: {per_hour: 2, per_day: 3}
    rules: [{name: r, interval: 0, text: x}]
""")
    hour = MemoryHistory()
    for i in range(2):
        hour.add_reply("a", f"s{i}@example.net", "h", now - timedelta(minutes=10))
    day = MemoryHistory()
    for i in range(3):
        day.add_reply("a", f"s{i}@example.net", "h", now - timedelta(hours=5))
    other_mailbox = MemoryHistory()
    for i in range(5):
        other_mailbox.add_reply("b", f"s{i}@example.net", "h", now)
    assert run(eml(), mailbox, history=hour).reason == "rate-limit"
    assert run(eml(), mailbox, history=day).reason == "rate-limit"
    assert run(eml(), mailbox, history=other_mailbox).reason == "reply"


def test_suppression_comes_before_already_replied_and_rate_limit(make_mailbox, run, eml,
                                                                  now) -> None:
    mailbox = make_mailbox("""
mailboxes:
  - name: a
    address: alice@example.org
    suppression: [bob@example.net]
    max_replies: {per_hour: 1}
    rules: [{name: r, text: x}]
""")
    history = MemoryHistory()
    history.add_reply("a", "bob@example.net", mailbox.rules[0].handle, now)
    assert run(eml(), mailbox, history=history).reason == "suppressed"
    history.suppressed.clear()
    assert run(eml(return_path="<carol@example.net>"), mailbox, history=history).reason == \
        "rate-limit"


def test_guards_come_before_history(permissive, run, eml, now) -> None:
    history = MemoryHistory()
    history.suppressed.add(("*", "bob@example.net"))
    assert run(eml(extra=("Precedence: bulk",)), history=history).reason == "precedence"


def test_reply_decision_carries_rule_sender_and_ids(run, eml) -> None:
    decision = run(eml())
    assert decision.decision == "reply"
    assert decision.reason == "reply"
    assert decision.rule_name == "always"
    assert decision.sender == "bob@example.net"
    assert decision.sender_key == "bob@example.net"
    assert decision.message_id == "<lunch.1@example.net>"
    assert decision.detail


def test_decide_is_deterministic_for_the_same_inputs(run, eml) -> None:
    assert run(eml()) == run(eml())
