"""The fast paths of header parsing read every input exactly as the plain readings do.

Each reference below is the straightforward reading (decode line by line, retry byte by byte,
unfold with CRLF or LF, run the pattern on every value); the parser must agree with it on any
bytes, including CR without LF, invalid UTF-8 at line ends and control characters.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from awayd.core.message import _header_text, decode_bytes, one_line, parse, scrub


def _byte(b: bytes) -> str:
    try:
        return b.decode("cp1252")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _utf8_else_cp1252(data: bytes) -> str:
    parts: list[str] = []
    rest = data
    while rest:
        try:
            parts.append(rest.decode("utf-8"))
            break
        except UnicodeDecodeError as err:
            parts.append(rest[: err.start].decode("utf-8"))
            parts.extend(_byte(rest[i : i + 1]) for i in range(err.start, err.end))
            rest = rest[err.end :]
    return "".join(parts)


def _reference_fields(head: bytes) -> list[tuple[str, str]]:
    text = "\n".join(_utf8_else_cp1252(line) for line in head.split(b"\n"))
    text = re.sub(r"\r?\n[ \t]+", " ", text)
    fields = []
    for line in text.split("\n"):
        m = re.match(r"^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)$", line)
        if m:
            fields.append((m.group(1).lower(), m.group(2).strip()))
    return fields


#: Pieces that meet at line ends: CR, LF, folds, UTF-8 cut short, cp1252 and its holes.
_PIECES = st.sampled_from([b"\r", b"\n", b"\r\n", b"\n ", b"\r\n\t", b"X-A: ", b"Subject:", b" ",
                           b"a", b"\xc3", b"\xa9", b"\xe2\x82", b"\xe2\x82\xac", b"\xf0\x9f\x98",
                           b"\x81", b"\x8d", b"\xff", b"\xed\xa0\x80", b"\x00", b"\xc2\x85"])
_HEADERS = st.lists(st.one_of(_PIECES, st.binary(max_size=4)), max_size=40).map(b"".join)
#: Whole lines: a field, a fold or junk, then a text with odd bytes, then any line end.
_LINE = st.tuples(st.sampled_from([b"X-A: ", b"Subject:", b"To :", b"Cc\t:", b": ", b"A B:", b" ", b"\t", b"",
                                   b"bad line"]),
                  st.lists(_PIECES.filter(lambda b: b"\n" not in b), max_size=6).map(b"".join),
                  st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r"])).map(b"".join)


@settings(max_examples=400)
@given(_HEADERS)
def test_header_bytes_read_as_utf8_line_by_line_with_cp1252_for_the_rest(head: bytes) -> None:
    expected = "\n".join(_utf8_else_cp1252(line) for line in head.split(b"\n"))
    assert _header_text(head) == expected
    assert decode_bytes(head, "utf-8") == _utf8_else_cp1252(head)


@settings(max_examples=400)
@given(st.lists(_LINE, max_size=12).map(b"".join))
def test_fields_unfold_as_with_crlf_or_lf_folds(head: bytes) -> None:
    while b"\r\n\r\n" in head or b"\n\n" in head:  # one header block: no empty line inside
        head = head.replace(b"\r\n\r\n", b"\r\n").replace(b"\n\n", b"\n")
    head = head.lstrip(b"\r\n")
    assert list(parse(head + b"\r\n\r\nbody").fields) == _reference_fields(head)


_CHARS = [*"ab :<>\t\r\n\x00\x1f\x7f\x85\xa0\u2028\u2029é€", "\ud800", "\U0001f600"]
_TEXT = st.text(alphabet=st.sampled_from(_CHARS), max_size=30)


@given(_TEXT)
def test_one_line_and_scrub_agree_with_their_patterns(value: str) -> None:
    assert one_line(value) == re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]+", " ", value).strip()
    assert scrub(value) == re.sub("[\ud800-\udfff]", "\ufffd", value)
