"""Tests for header decoding: mislabelled charsets, split words, and fuzzing of decide() with
encoded words whose bytes do not fit their charset; every reply must serialise to bytes."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awayd.core import reasons as r
from awayd.core.decide import judge
from awayd.core.history import EmptyHistory
from awayd.core.message import decode_bytes, decode_words, parse
from awayd.errors import StateError

NOW = datetime(2026, 12, 22, 9, 0, tzinfo=UTC)
SURROGATE = re.compile("[\ud800-\udfff]")
HEAD = (b"Return-Path: <bob@example.net>\r\nFrom: Bob <bob@example.net>\r\n"
        b"To: alice@example.org\r\nMessage-ID: <m1@example.net>\r\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=?utf-8?q?caf=E9?=", "café"),  # a Latin-1 byte labelled UTF-8
        ("=?utf-8?b?Y2Fm6Q==?=", "café"),
        ("=?utf-8?q?=80_euro?=", "€ euro"),  # cp1252, not a C1 control
        ("=?utf-8?q?=C3=A9t=E9?=", "été"),  # valid UTF-8 and a stray Latin-1 byte
        ("=?iso-8859-1?q?caf=E9?=", "café"),
        ("=?x-unknown?q?caf=C3=A9?=", "café"),
        ("=?utf-8?q?=C3?= =?utf-8?q?=A9?=", "é"),  # a character split across two words
        ("=?utf-8?q?a?= =?iso-8859-1?q?=E9?= z", "aé z"),
        ("a =?utf-8?q?b?=  c", "a b  c"),
        ("=?utf-8*fr?q?a_b?=", "a b"),
        ("=?utf-7?q?+2D0-?=", "\ufffd"),  # UTF-7 can spell a lone surrogate
        ("caf\udce9", "caf\ufffd"),
        ("=?utf-8?q?broken", "=?utf-8?q?broken"),
        ("=?hex?q?41?=", "41"),  # not a text codec: read as UTF-8
    ],
)
def test_decode_words(value: str, expected: str) -> None:
    assert decode_words(value) == expected


def test_a_long_run_of_unterminated_words_decodes_in_linear_time() -> None:
    value = "=?a?q?" * 100_000
    assert decode_words(value) == value


@given(data=st.binary(max_size=64), charset=st.sampled_from(
    ["utf-8", "us-ascii", "iso-8859-1", "cp1252", "utf-7", "utf-16", "shift_jis", "koi8-r",
     "gb2312", "unicode_escape", "x-bogus", "base64"]))
def test_decode_bytes_never_raises_and_never_yields_a_surrogate(data: bytes, charset: str) -> None:
    text = decode_bytes(data, charset)
    assert SURROGATE.search(text) is None
    text.encode("utf-8")


CHARSETS = st.sampled_from(["utf-8", "UTF-8", "iso-8859-1", "utf-7", "x-bogus", "us-ascii",
                            "utf-16", "unicode_escape", "utf-8*en", "windows-1252"])


@st.composite
def encoded_word(draw: st.DrawFn) -> str:
    charset = draw(CHARSETS)
    data = draw(st.binary(max_size=24))
    if draw(st.booleans()):
        text = base64.b64encode(data).decode("ascii")
        return f"=?{charset}?b?{text}?="
    text = "".join(f"={b:02X}" if b < 33 or b > 126 or b in b"=?_" else chr(b) for b in data)
    return f"=?{charset}?q?{text}?="


WORDS = st.lists(encoded_word() | st.sampled_from([" ", "x", "é", "\t", "=?", "?="]),
                 min_size=1, max_size=6).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=WORDS, name=WORDS)
def test_mislabelled_encoded_words_never_break_a_reply(permissive, subject: str,
                                                       name: str) -> None:
    raw = (HEAD.replace(b"From: Bob", b"From: " + name.encode("utf-8"))
           + b"Subject: " + subject.encode("utf-8") + b"\r\n\r\nbody\r\n")
    judged = judge(raw, permissive, now=NOW, history=EmptyHistory(),
                   new_message_id=lambda domain: f"<awayd.fuzz@{domain}>")
    assert judged.error is None
    decision = judged.decision
    assert SURROGATE.search(parse(raw).subject) is None
    if decision.reply is not None:
        assert judged.wire == decision.reply.to_bytes()
        assert SURROGATE.search(decision.reply.subject) is None


def test_the_poison_subject_gets_a_reply_that_serialises(permissive) -> None:
    raw = HEAD + b"Subject: =?utf-8?q?caf=E9?=\r\n\r\nbody\r\n"
    judged = judge(raw, permissive, now=NOW, history=EmptyHistory(),
                   new_message_id=lambda domain: f"<awayd.fuzz@{domain}>")
    assert judged.decision.reason == r.REPLY
    assert judged.wire is not None
    assert judged.decision.reply is not None
    assert judged.decision.reply.subject.endswith("café")


class _BrokenHistory(EmptyHistory):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def replied_since(self, *args: object) -> bool:
        raise self.error

    def replies_since(self, *args: object) -> int:
        raise self.error


def test_an_unexpected_error_while_deciding_is_a_malformed_decision(permissive) -> None:
    raw = HEAD + b"Subject: hi\r\n\r\nbody\r\n"
    judged = judge(raw, permissive, now=NOW, history=_BrokenHistory(KeyError("boom")),
                   new_message_id=lambda domain: f"<awayd.fuzz@{domain}>")
    assert judged.decision.reason == r.MALFORMED
    assert judged.error is not None
    assert "boom" in judged.error


def test_a_store_error_while_deciding_is_not_the_message_fault(permissive) -> None:
    raw = HEAD + b"Subject: hi\r\n\r\nbody\r\n"
    with pytest.raises(StateError):
        judge(raw, permissive, now=NOW, history=_BrokenHistory(StateError("disk full")),
              new_message_id=lambda domain: f"<awayd.fuzz@{domain}>")


def test_raw_8bit_header_text_reads_utf8_where_valid_and_cp1252_elsewhere() -> None:
    message = parse(b"Subject: 100 \x80 pour l'\xc3\xa9t\xe9\r\nFrom: Ren\xe9 <r@example.net>\r\n\r\n")
    assert message.subject == "100 € pour l'été"
    assert message.from_address is not None
    assert message.from_address.name == "René"
