"""Tests for awayd.core.message: tolerant header parsing, decoding and envelope helpers."""

from __future__ import annotations

import pytest

from awayd.core.message import decode_words, one_line, parse, split_header, unwrap_srs

BASIC = (
    b"Return-Path: <bob@example.net>\r\n"
    b"From: Bob Martin <bob@example.net>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: Lunch\r\n"
    b"Message-ID: <lunch.1@example.net>\r\n"
    b"\r\n"
    b"Hello\r\n"
)


def test_crlf_message_yields_headers_in_order_with_lowercase_names() -> None:
    m = parse(BASIC)
    assert [name for name, _ in m.fields] == ["return-path", "from", "to", "subject", "message-id"]
    assert m.subject == "Lunch"
    assert m.body == b"Hello\r\n"


def test_lf_only_message_parses_like_crlf() -> None:
    lf = parse(BASIC.replace(b"\r\n", b"\n"))
    crlf = parse(BASIC)
    assert lf.fields == crlf.fields
    assert lf.body == b"Hello\n"


def test_header_and_body_split_at_first_empty_line_for_either_line_end() -> None:
    assert split_header(b"A: 1\nB: 2\n\nbody\n\nmore") == (b"A: 1\nB: 2", b"body\n\nmore")
    assert split_header(b"A: 1\r\n\r\nbody") == (b"A: 1", b"body")
    assert split_header(b"A: 1\r\nB: 2") == (b"A: 1\r\nB: 2", b"")


def test_raw_utf8_header_is_decoded_as_utf8() -> None:
    m = parse("Subject: Réunion à Lyon\r\nFrom: Jörg <jörg@example.de>\r\n\r\n".encode())
    assert m.subject == "Réunion à Lyon"
    assert m.from_address is not None
    assert m.from_address.name == "Jörg"


def test_raw_latin1_header_is_decoded_as_latin1() -> None:
    m = parse("Subject: Café crème\r\n\r\n".encode("latin-1"))
    assert m.subject == "Café crème"


def test_rfc2047_q_encoded_iso_8859_1_subject_is_decoded() -> None:
    m = parse(b"Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=\r\n\r\n")
    assert m.subject == "Café crème"


def test_rfc2047_b_encoded_utf8_subject_is_decoded() -> None:
    m = parse(b"Subject: =?UTF-8?B?UsOpdW5pb24gw6AgTHlvbg==?=\r\n\r\n")
    assert m.subject == "Réunion à Lyon"


def test_rfc2047_display_name_is_decoded() -> None:
    m = parse(b"From: =?iso-8859-1?q?Fran=E7oise_Lef=E8vre?= <fl@example.fr>\r\n\r\n")
    assert m.from_address is not None
    assert m.from_address.name == "Françoise Lefèvre"
    assert m.from_address.address == "fl@example.fr"


def test_encoded_words_next_to_raw_8bit_text_are_still_decoded() -> None:
    m = parse("Subject: Grüße =?utf-8?q?aus_K=C3=B6ln?=\r\n\r\n".encode())
    assert m.subject == "Grüße aus Köln"


def test_folded_header_is_unfolded_and_adjacent_encoded_words_join() -> None:
    raw = (b"Subject: =?ISO-8859-1?Q?Caf=E9?=\r\n =?UTF-8?B?IMOgIEx5b24=?=\r\n\tsuite\r\n"
           b"To: a@example.org,\r\n  b@example.org\r\n\r\n")
    m = parse(raw)
    assert m.subject == "Café à Lyon suite"
    assert [a.address for a in m.addresses("to")] == ["a@example.org", "b@example.org"]


def test_rfc6532_utf8_addresses_are_kept_as_written() -> None:
    m = parse("Return-Path: <jörg@bücher.example>\r\nFrom: Jörg <jörg@bücher.example>\r\n\r\n"
              .encode())
    assert m.return_path() == "jörg@bücher.example"
    assert m.from_address is not None
    assert m.from_address.domain == "bücher.example"


def test_missing_headers_read_as_none() -> None:
    m = parse(b"X-Other: 1\r\n\r\n")
    assert m.get("subject") is None
    assert m.subject == ""
    assert m.from_address is None
    assert m.return_path() is None
    assert m.message_id is None


def test_topmost_return_path_wins_over_later_ones() -> None:
    m = parse(b"Return-Path: <first@example.net>\r\nReturn-Path: <second@example.net>\r\n\r\n")
    assert m.return_path() == "first@example.net"
    assert m.get_all("return-path") == ["<first@example.net>", "<second@example.net>"]


def test_duplicated_subject_keeps_the_first_and_all_values() -> None:
    m = parse(b"Subject: one\r\nSubject: two\r\n\r\n")
    assert m.subject == "one"
    assert m.get_all("subject") == ["one", "two"]


@pytest.mark.parametrize("value", ["<>", "<<>>", " <> ", "< >"])
def test_null_return_path_reads_as_empty_string(value: str) -> None:
    assert parse(f"Return-Path: {value}\r\n\r\n".encode()).return_path() == ""


def test_return_path_without_brackets_is_accepted() -> None:
    assert parse(b"Return-Path: bob@example.net\r\n\r\n").return_path() == "bob@example.net"


def test_mbox_from_line_is_skipped() -> None:
    m = parse(b"From bob@example.net Mon Dec 21 09:00:00 2026\nReturn-Path: <bob@example.net>\n"
              b"Subject: hi\n\nbody\n")
    assert [name for name, _ in m.fields] == ["return-path", "subject"]


def test_empty_input_parses_to_a_message_without_fields() -> None:
    m = parse(b"")
    assert m.fields == ()
    assert m.body == b""


def test_body_only_input_has_no_fields() -> None:
    m = parse(b"\r\njust a body\r\n")
    assert m.fields == ()
    assert m.body == b"just a body\r\n"


def test_lines_that_are_not_headers_are_ignored() -> None:
    m = parse(b"Subject: ok\r\nthis is not a header\r\nBad Name: x\r\n: empty\r\nX-Ok: 1\r\n\r\n")
    assert [name for name, _ in m.fields] == ["subject", "x-ok"]


def test_huge_header_block_of_20000_received_lines_parses_and_keeps_the_top() -> None:
    received = b"Received: from relay.example by mx.example.org; Mon, 21 Dec 2026 09:00:00 +0100\r\n"
    raw = (b"Return-Path: <bob@example.net>\r\n" + received * 20_000
           + b"From: bob@example.net\r\nTo: alice@example.org\r\n\r\nbody")
    m = parse(raw)
    assert m.return_path() == "bob@example.net"
    assert m.get_all("received")
    assert m.arrival_from_received() is not None


def test_body_prefix_is_capped() -> None:
    m = parse(b"Subject: big\r\n\r\n" + b"x" * 100_000)
    assert len(m.body) == 4096


def test_control_characters_in_header_values_never_reach_the_subject() -> None:
    m = parse(b"Subject: =?utf-8?q?a=0D=0Ab=00c?=\r\n\r\n")
    assert m.subject == "a b c"


@pytest.mark.parametrize("text", ["a\rb", "a\nb", "a\r\nb", "a\x00b", "a\x0bb", "a\x85b",
                                  "a\u2028b", "a\u2029b", "a\x1cb"])
def test_one_line_removes_every_line_break_str_splitlines_knows(text: str) -> None:
    assert one_line(text) == "a b"
    assert len(one_line(text).splitlines()) == 1


def test_decode_words_leaves_broken_encoded_words_alone() -> None:
    assert decode_words("=?utf-8?q?broken") == "=?utf-8?q?broken"
    assert decode_words("plain text") == "plain text"


def test_message_id_is_extracted_from_angle_brackets() -> None:
    m = parse(b"Message-ID: (comment) <abc@example.net> trailing\r\n\r\n")
    assert m.message_id == "<abc@example.net>"


def test_message_id_without_brackets_gets_them() -> None:
    assert parse(b"Message-ID: abc@example.net\r\n\r\n").message_id == "<abc@example.net>"


def test_arrival_is_read_from_the_topmost_received_line() -> None:
    m = parse(b"Received: by mx; Tue, 22 Dec 2026 10:00:00 +0100\r\n"
              b"Received: by relay; Mon, 21 Dec 2026 10:00:00 +0100\r\n\r\n")
    arrival = m.arrival_from_received()
    assert arrival is not None
    assert arrival.isoformat() == "2026-12-22T10:00:00+01:00"


def test_unparseable_received_date_gives_no_arrival() -> None:
    assert parse(b"Received: by mx; not a date\r\n\r\n").arrival_from_received() is None


@pytest.mark.parametrize(
    ("address", "original"),
    [
        ("SRS0=HHH=TT=client.example=bob@forwarder.example", "bob@client.example"),
        ("srs0+HHH=TT=client.example=bob@forwarder.example", "bob@client.example"),
        ("SRS0=HHH=TT=client.example=bob=smith@forwarder.example", "bob=smith@client.example"),
        ("SRS1=HHH=first.example==HHH=TT=client.example=bob@second.example",
         "bob@client.example"),
        ("bob@example.net", "bob@example.net"),
        ("SRS0=broken@forwarder.example", "SRS0=broken@forwarder.example"),
    ],
)
def test_srs_addresses_unwrap_to_the_original_sender(address: str, original: str) -> None:
    assert unwrap_srs(address) == original


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<bob@example.net>", "bob@example.net"),
        ("bob@example.net", "bob@example.net"),
        ("<bob@example.net> (via relay)", "bob@example.net"),
        ("<@relay.example:bob@example.net>", "bob@example.net"),
        ("<SRS0=x=TT=client.example=bob@fwd.example>", "SRS0=x=TT=client.example=bob@fwd.example"),
        # the address parser would guess b@example.net: keep what was written, never guess
        ("<a,b@example.net>", "a,b@example.net"),
        ("<a;b@example.net>", "a;b@example.net"),
        ("<=?utf-8?q?x=0D=0AY:_1?=@example.net>", "=?utf-8?q?x=0D=0AY:_1?=@example.net"),
    ],
)
def test_return_path_is_taken_as_written(value: str, expected: str) -> None:
    assert parse(f"Return-Path: {value}\r\n\r\n".encode()).return_path() == expected
