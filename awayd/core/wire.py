"""Write a reply as RFC 5322 bytes: CRLF, headers RFC 2047-encoded where needed, QP bodies.

Written directly rather than through email.message.EmailMessage, whose header registry built
a new class for every header and cost a fifth of the daemon's time per reply.
"""

from __future__ import annotations

import binascii
import hashlib
from email.header import Header
from email.utils import parseaddr

LINE = 78  # RFC 5322 §2.1.1: SHOULD fold at 78
_ADDRESS_HEADERS = frozenset({"from", "to", "reply-to"})
_ID_HEADERS = frozenset({"message-id", "in-reply-to", "references"})


def _encode_text(name: str, value: str) -> str:
    """An unstructured value: as is when short ASCII, else folded or encoded words."""
    if value.isascii() and len(name) + 2 + len(value) <= LINE:
        return value
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, header_name=name, maxlinelen=LINE).encode(linesep="\r\n")


def _encode_address(name: str, value: str) -> str:
    """`Name <addr>`: the name encoded if need be; the address kept (UTF-8 under SMTPUTF8)."""
    display, addr = parseaddr(value)
    if not display or display.isascii():
        return value
    return f"{Header(display, 'utf-8', header_name=name).encode(linesep=chr(13) + chr(10))} <{addr}>"


def _fold_ids(value: str) -> str:
    """Message ids are never encoded (that breaks threading); fold between them only."""
    return "\r\n ".join(value.split())


def header_line(name: str, value: str) -> str:
    key = name.lower()
    if key in _ID_HEADERS:
        body = _fold_ids(value)
    elif key in _ADDRESS_HEADERS:
        body = _encode_address(name, value)
    else:
        body = _encode_text(name, value)
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
        f"Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n".encode("ascii"),
        f"--{boundary}\r\n".encode("ascii"), _part("plain", text), b"\r\n",
        f"--{boundary}\r\n".encode("ascii"), _part("html", html), b"\r\n",
        f"--{boundary}--\r\n".encode("ascii"),
    ])
    return head + body
