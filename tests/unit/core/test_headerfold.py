"""Tests for awayd.core.headerfold: encoded words of at most 75, lines of at most 78, exact text."""

from __future__ import annotations

import email
import re
from email import policy
from email.header import decode_header, make_header

from hypothesis import given, settings
from hypothesis import strategies as st

from awayd.core import headerfold as fold
from awayd.core.message import one_line

ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=")

# Header text as it reaches the encoder: one line, no control characters, trimmed.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300).map(one_line)
SHORT_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=120).map(
    one_line).filter(bool)


def rfc2047(value: str) -> str:
    """Decode as RFC 2047 §6.2 says: whitespace between adjacent encoded words is dropped."""
    return str(make_header(decode_header(value.replace("\r\n", ""))))


def assert_limits(line: str) -> None:
    for physical in line.split("\r\n"):
        assert len(physical) <= fold.LINE, (len(physical), line)
        assert physical.strip(), line  # folding never leaves a line of blanks
    for word in ENCODED_WORD.findall(line):
        assert len(word) <= fold.WORD, word


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_any_subject_stays_within_the_limits_and_decodes_to_itself(subject: str) -> None:
    line = "Subject: " + fold.unstructured("Subject", subject)
    assert_limits(line)
    parsed = email.message_from_bytes(f"{line}\r\n\r\n".encode(), policy=policy.default)
    assert str(parsed["Subject"]) == subject
    assert rfc2047(line.partition(": ")[2]) == subject


@settings(max_examples=300, deadline=None)
@given(SHORT_TEXT)
def test_any_display_name_stays_within_the_limits_and_decodes_to_itself(name: str) -> None:
    line = "To: " + fold.mailbox("To", name, "marie.dupont@example.net")
    assert_limits(line)
    phrase, _, angle = line.partition(": ")[2].replace("\r\n", "").rpartition(" <")
    assert angle == "marie.dupont@example.net>"
    if phrase.startswith('"'):
        assert phrase.endswith('"')
        assert re.sub(r"\\(.)", r"\1", phrase[1:-1]) == name
    else:
        assert rfc2047(phrase) == name
    parsed = email.message_from_bytes(f"{line}\r\n\r\n".encode(), policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "marie.dupont@example.net"


def test_an_encoded_word_never_splits_a_character() -> None:
    for text in ("é" * 200, "日本語" * 60, "🎉" * 90, "a" + "é" * 100):
        for word in ENCODED_WORD.findall(fold.unstructured("Subject", text)):
            assert rfc2047(word)  # each word decodes alone: whole characters inside
            assert "\ufffd" not in rfc2047(word)


def test_short_ascii_text_is_left_as_is_and_long_text_is_folded_at_spaces() -> None:
    assert fold.unstructured("Subject", "Auto: Lunch") == "Auto: Lunch"
    long = " ".join(["word"] * 40)
    folded = fold.unstructured("Subject", long)
    assert "=?" not in folded
    assert folded.replace("\r\n", "") == long


def test_text_that_looks_like_an_encoded_word_is_encoded() -> None:
    assert fold.unstructured("Subject", "=?utf-8?q?x?=").startswith("=?utf-8?")


def test_long_ascii_display_name_folds_between_words_and_addresses_move_to_a_new_line() -> None:
    name = "Very Long Plain Name With Many Words That Will Not Fit On One Line At All Really"
    line = "To: " + fold.mailbox("To", name, "bob@example.net")
    assert_limits(line)
    assert "=?" not in line
    parsed = email.message_from_bytes(f"{line}\r\n\r\n".encode(), policy=policy.default)
    assert parsed["To"].addresses[0].display_name == name


def test_ids_fold_between_ids_only() -> None:
    ids = " ".join(f"<part{i}.1234567890@mail.example.net>" for i in range(10))
    line = "References: " + fold.ids("References", ids)
    assert_limits(line)
    assert line.partition(": ")[2].replace("\r\n ", " ") == ids
