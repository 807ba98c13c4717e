"""Write a reply as RFC 5322 bytes: CRLF, headers RFC 2047-encoded where needed, QP bodies.

Written directly rather than through email.message.EmailMessage, whose header registry built
a new class for every header and cost a fifth of the daemon's time per reply.
"""

from __future__ import annotations

import binascii
import hashlib
from email.utils import parseaddr

from awayd.core import headerfold as fold

_ADDRESS_HEADERS = frozenset({"from", "to", "reply-to"})
_ID_HEADERS = frozenset({"message-id", "in-reply-to", "references"})


def header_line(name: str, value: str) -> str:
    """`Name: value` folded, RFC 2047 encoded where needed; addresses and ids never encoded.

    A non-ASCII address or message id stays UTF-8 (RFC 6532): the sender then uses SMTPUTF8.
    """
    key = name.lower()
    if key in _ID_HEADERS:
        body = fold.ids(name, value)
    elif key in _ADDRESS_HEADERS:
        display, addr = parseaddr(value)
        body = fold.mailbox(name, display, addr) if addr else fold.unstructured(name, value)
    else:
        body = fold.unstructured(name, value)
    return f"{name}: {body}"


def _qp(text: str) -> bytes:
    data = text.replace("\r\n", "\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def _part(subtype: str, text: str) -> bytes:
    return (f"Content-Type: text/{subtype}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode("ascii") + _qp(text)


def render(headers: tuple[tuple[str, str], ...], text: str, html: str | None) -> bytes:
    """The whole message; Content-* headers of `headers` go with the top-level entity."""
    lines = [header_line(name, value) for name, value in headers]
    lines.append("MIME-Version: 1.0")
    head = "\r\n".join(lines).encode("utf-8") + b"\r\n"
    if html is None:
        return head + _part("plain", text)
    seed = "\x00".join(v for _, v in headers) + text + html
    boundary = "=_awayd_" + hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    body = b"".join([
        f"Content-Type: multipart/alternative;\r\n boundary=\"{boundary}\"\r\n\r\n".encode("ascii"),
        f"--{boundary}\r\n".encode("ascii"), _part("plain", text), b"\r\n",
        f"--{boundary}\r\n".encode("ascii"), _part("html", html), b"\r\n",
        f"--{boundary}--\r\n".encode("ascii"),
    ])
    return head + body


def needs_smtputf8(message: bytes) -> bool:
    """Whether the header block holds raw UTF-8 (RFC 6532); bodies are always 7-bit here."""
    return not message.partition(b"\r\n\r\n")[0].isascii()


def without_utf8_ids(message: bytes) -> bytes | None:
    """`message` with its non-ASCII ids left out of In-Reply-To and References.

    For a relay without SMTPUTF8: such an id cannot be written in ASCII (encoding it breaks
    threading anyway), so the reply goes out unthreaded rather than not at all. None when the
    header still needs UTF-8 after that (a non-ASCII address): then nothing can be sent.
    """
    head, sep, body = message.partition(b"\r\n\r\n")
    fields: list[str] = []
    for line in head.decode("utf-8", "surrogateescape").split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += "\r\n" + line
        else:
            fields.append(line)
    kept: list[str] = []
    for field in fields:
        name, _, value = field.partition(":")
        if name.lower() in ("in-reply-to", "references") and not field.isascii():
            ascii_ids = " ".join(i for i in value.split() if i.isascii())
            if not ascii_ids:
                continue
            field = header_line(name, ascii_ids)
        kept.append(field)
    out = "\r\n".join(kept).encode("utf-8", "surrogateescape")
    return out + sep + body if out.isascii() else None
