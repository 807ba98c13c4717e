"""Tolerant parsing of a stored message's header block into the values the guards need."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import getaddresses, parsedate_to_datetime
from functools import cached_property

MAX_HEADER_BYTES = 1 << 20  # a header block larger than 1 MiB is cut there
MAX_FIELDS = 5000

# NEL and U+2028/2029 too: str.splitlines() (and so the email package) breaks lines there
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_COMMENT_AT_END = re.compile(r"\s*\([^()]*\)\s*$")
_SRS0 = re.compile(r"^srs0[=+-][^=]+=[^=]+=([^=]+)=(.+)$", re.IGNORECASE)
_SRS1 = re.compile(r"^srs1[=+-][^=]+=[^=]+==[^=]+=[^=]+=([^=]+)=(.+)$", re.IGNORECASE)


def one_line(value: str) -> str:
    """Collapse every control character (CR and LF included) into one space."""
    return _CONTROL.sub(" ", value).strip()


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words leniently; the result never holds a lone surrogate.

    Adjacent encoded words of one charset are decoded together (a character may be split
    between them) and the whitespace between encoded words is dropped. Bytes that are not
    valid in the declared charset (a Latin-1 byte labelled UTF-8 is common) are read as
    UTF-8, then cp1252, then Latin-1, so a mislabelled word still reads as the sender meant.
    A word that cannot be decoded at all (bad base64) is kept as written.
    """
    if "=?" not in value:
        return scrub(value)
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""
    last_end = 0

    def flush() -> None:
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset))
            pending.clear()

    for m in _ENCODED_WORD.finditer(value):
        between = value[last_end : m.start()]
        data = _word_bytes(m.group(2), m.group(3))
        if data is None:
            continue  # left in the text: appended with the next stretch
        charset = m.group(1).partition("*")[0].lower()  # RFC 2231 language suffix
        if between and not (between.isspace() and last_end > 0):
            flush()
            out.append(between)
        elif pending and charset != pending_charset:
            flush()
        pending.append(data)
        pending_charset = charset
        last_end = m.end()
    flush()
    out.append(value[last_end:])
    return scrub("".join(out))


#: "?" never occurs inside a word (Q writes it =3F), which keeps the scan linear.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
#: Codecs of Python, not charsets of mail: a label naming one is treated as unknown.
_PYTHON_CODECS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode",
                            "undefined"})
_SURROGATE = re.compile("[\ud800-\udfff]")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    if encoding in "qQ":
        raw = text.replace("_", " ").encode("utf-8", "surrogatepass")
        return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
    try:
        data = text.encode("ascii")
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except (ValueError, binascii.Error):
        return None


def decode_bytes(data: bytes, charset: str) -> str:
    """`data` in `charset` when it fits strictly; else as UTF-8 where the bytes are valid
    UTF-8 and as cp1252 (Latin-1 for its five holes) byte by byte where they are not.
    Never raises, never returns a lone surrogate."""
    for candidate in (charset, "utf-8"):
        try:
            if codecs.lookup(candidate).name in _PYTHON_CODECS:
                continue
            return scrub(data.decode(candidate))
        except (UnicodeError, LookupError):
            continue
    parts: list[str] = []
    rest = data
    while rest:
        try:
            parts.append(rest.decode("utf-8"))
            break
        except UnicodeDecodeError as err:
            parts.append(rest[: err.start].decode("utf-8"))
            parts.extend(_single_byte(rest[i : i + 1]) for i in range(err.start, err.end))
            rest = rest[err.end :]
    return "".join(parts)


def _single_byte(byte: bytes) -> str:
    try:
        return byte.decode("cp1252")
    except UnicodeDecodeError:
        return byte.decode("latin-1")


def scrub(text: str) -> str:
    """Replace lone surrogates (from a codec such as UTF-7, or surrogateescape) with U+FFFD:
    they cannot be written as UTF-8, so any reply or output carrying one would fail."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def unwrap_srs(address: str) -> str:
    """Return the original address of an SRS0/SRS1 rewritten address, else the address."""
    local, _, _domain = address.rpartition("@")
    for pattern in (_SRS1, _SRS0):
        m = pattern.match(local)
        if m:
            return f"{m.group(2)}@{m.group(1)}"
    return address


@dataclass(frozen=True)
class Address:
    address: str  # as written
    name: str  # decoded display name, one line, possibly empty

    @property
    def key(self) -> str:
        return self.address.lower()

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0].lower()

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


@dataclass(frozen=True)
class Message:
    """Headers in order (lowercase names, values unfolded and decoded to str) and a body prefix."""

    fields: tuple[tuple[str, str], ...]
    body: bytes = b""
    _index: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def get(self, name: str) -> str | None:
        values = self._index.get(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        return self._index.get(name, [])

    def has(self, name: str) -> bool:
        return name in self._index

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._index)

    @cached_property
    def subject(self) -> str:
        return one_line(decode_words(self.get("subject") or ""))

    @cached_property
    def message_id(self) -> str | None:
        value = self.get("message-id")
        if not value:
            return None
        value = one_line(value)
        m = re.search(r"<[^<>\s]+>", value)
        return m.group(0) if m else (f"<{value}>" if value and " " not in value else None)

    @cached_property
    def from_address(self) -> Address | None:
        return first_address(self.get("from"))

    @property
    def content_type(self) -> str:
        return (self.get("content-type") or "text/plain").lower()

    def return_path(self) -> str | None:
        """The topmost Return-Path: None when absent, "" for the null sender."""
        return self._return_path

    @cached_property
    def _return_path(self) -> str | None:
        value = self.get("return-path")
        if value is None:
            return None
        inner = _COMMENT_AT_END.sub("", one_line(value))
        while inner.startswith("<") and inner.endswith(">"):
            inner = inner[1:-1].strip()
        if not inner:
            return ""
        addr = first_address(f"<{inner}>")
        if addr is None or not inner.endswith(addr.address):
            return inner
        # Only an obsolete source route (<@relay:bob@x>) may come before the address. Else the
        # parser guessed (<a,b@x> gives b@x): keep it as written, for invalid-sender to judge.
        prefix = inner[: len(inner) - len(addr.address)]
        if not prefix or (prefix.startswith("@") and prefix.endswith(":")):
            return addr.address
        return inner

    def addresses(self, *names: str) -> list[Address]:
        values = [v for n in names for v in self.get_all(n)]
        return parse_addresses(values)

    def arrival_from_received(self) -> datetime | None:
        """The date of the topmost Received: line (set by our own MX), if it parses."""
        received = self.get("received")
        if not received or ";" not in received:
            return None
        try:
            when = parsedate_to_datetime(received.rpartition(";")[2].strip())
        except (TypeError, ValueError, IndexError):
            return None
        return when if when.tzinfo is not None else None


_HARD = re.compile(r'["()\\;:]')  # quoting, comments, groups: leave those to the stdlib
_ANGLE = re.compile(r"^(.*?)<([^<>]*)>\s*$")


def _simple_addresses(value: str) -> list[Address] | None:
    """Fast path for the usual `Name <a@b>, c@d` forms; None when the value needs a real parser."""
    out: list[Address] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        m = _ANGLE.match(part)
        if m:
            name, addr = m.group(1).strip(), m.group(2).strip()
        elif "<" in part or ">" in part or " " in part:
            return None
        else:
            name, addr = "", part
        if "@" in addr and " " not in addr:
            out.append(Address(addr, one_line(decode_words(name)) if name else ""))
    return out


def parse_addresses(values: list[str]) -> list[Address]:
    out: list[Address] = []
    if not any(_HARD.search(v) for v in values):
        fast = [_simple_addresses(one_line(v)) for v in values]
        if all(f is not None for f in fast):
            return [a for f in fast if f is not None for a in f]
    try:
        pairs = getaddresses([one_line(v) for v in values])
    except (ValueError, TypeError, IndexError):
        return out
    for name, addr in pairs:
        addr = addr.strip()
        if "@" in addr:
            out.append(Address(addr, one_line(decode_words(name))))
    return out


def first_address(value: str | None) -> Address | None:
    if not value:
        return None
    found = parse_addresses([value])
    return found[0] if found else None


def _decode(raw: bytes) -> str:
    # raw 8-bit header text is UTF-8 (RFC 6532) or, in older mail, cp1252/Latin-1 bytes
    return decode_bytes(raw, "utf-8")


_FOLD = re.compile(r"\r?\n[ \t]+")
_FIELD = re.compile(r"^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)$")


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line, whether lines end in CRLF or LF only."""
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n")
    candidates = [(i, n) for i, n in ((crlf, 4), (lf, 2)) if i >= 0]
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw.lstrip(b"\r\n")
    if not candidates:
        return raw, b""
    i, n = min(candidates)
    return raw[:i], raw[i + n :]


def _header_text(head: bytes) -> str:
    """Decode the header block: UTF-8 (RFC 6532) when it is, else line by line, each byte that
    is not UTF-8 read as cp1252 (Latin-1 for its five holes)."""
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        return "\n".join(_decode(line) for line in head.split(b"\n"))


def parse(raw: bytes) -> Message:
    """Parse raw message bytes. Never raises; a message without headers has no fields."""
    head, body = split_header(raw[: MAX_HEADER_BYTES + 65536])
    text = _FOLD.sub(" ", _header_text(head[:MAX_HEADER_BYTES]))
    lines = text.split("\n", MAX_FIELDS + 1)[:MAX_FIELDS]
    if lines and lines[0].startswith("From "):  # an mbox separator line
        lines = lines[1:]
    fields: list[tuple[str, str]] = []
    index: dict[str, list[str]] = {}
    for line in lines:
        m = _FIELD.match(line)
        if m is None:
            continue
        key = m.group(1).lower()
        value = m.group(2).strip()
        fields.append((key, value))
        index.setdefault(key, []).append(value)
    return Message(tuple(fields), body[:4096], index)
