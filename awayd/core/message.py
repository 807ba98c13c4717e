"""Tolerant parsing of a stored message's header block into the values the guards need."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime

MAX_HEADER_BYTES = 1 << 20  # a header block larger than 1 MiB is cut there
MAX_FIELDS = 5000

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_NAME_OK = re.compile(rb"^[\x21-\x39\x3b-\x7e]+$")
_SRS0 = re.compile(r"^srs0[=+-][^=]+=[^=]+=([^=]+)=(.+)$", re.IGNORECASE)
_SRS1 = re.compile(r"^srs1[=+-][^=]+=[^=]+==[^=]+=[^=]+=([^=]+)=(.+)$", re.IGNORECASE)


def one_line(value: str) -> str:
    """Collapse every control character (CR and LF included) into one space."""
    return _CONTROL.sub(" ", value).strip()


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; on any defect return the value as it is."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError, AssertionError, TypeError):
        return value


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

    @property
    def subject(self) -> str:
        return one_line(decode_words(self.get("subject") or ""))

    @property
    def message_id(self) -> str | None:
        value = self.get("message-id")
        if not value:
            return None
        value = one_line(value)
        m = re.search(r"<[^<>\s]+>", value)
        return m.group(0) if m else (f"<{value}>" if value and " " not in value else None)

    @property
    def from_address(self) -> Address | None:
        return first_address(self.get("from"))

    @property
    def content_type(self) -> str:
        return (self.get("content-type") or "text/plain").lower()

    def return_path(self) -> str | None:
        """The topmost Return-Path: None when absent, "" for the null sender."""
        value = self.get("return-path")
        if value is None:
            return None
        value = one_line(value)
        inner = value.strip()
        while inner.startswith("<") and inner.endswith(">"):
            inner = inner[1:-1].strip()
        if not inner:
            return ""
        addr = first_address(f"<{inner}>")
        return addr.address if addr else inner

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


def parse_addresses(values: list[str]) -> list[Address]:
    out: list[Address] = []
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
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


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


def parse(raw: bytes) -> Message:
    """Parse raw message bytes. Never raises; a message without headers has no fields."""
    head, body = split_header(raw[: MAX_HEADER_BYTES + 65536])
    head = head[:MAX_HEADER_BYTES]
    logical: list[bytearray] = []
    for line in head.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if logical:
                logical[-1] += b" " + line.strip()
            continue
        if not logical and line.startswith(b"From "):  # an mbox separator line
            continue
        logical.append(bytearray(line))
        if len(logical) > MAX_FIELDS:
            break
    fields: list[tuple[str, str]] = []
    index: dict[str, list[str]] = {}
    for item in logical:
        name, sep, value = bytes(item).partition(b":")
        name = name.rstrip(b" \t")
        if not sep or not name or not _NAME_OK.match(name):
            continue
        key = name.decode("ascii").lower()
        text = _decode(value).strip()
        fields.append((key, text))
        index.setdefault(key, []).append(text)
    return Message(tuple(fields), body[:4096], index)
