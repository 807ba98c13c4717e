"""The opening words of a message: the first text part's first lines, decoded, quoted text cut off."""

from __future__ import annotations

import base64
import binascii
import quopri
import re

from awayd.core.message import Message

#: Bytes of body text the daemon fetches with the header and the guards read.
TEXT_PREFIX = 1024
#: Characters of the first text part that are read for wording.
_OPENING = 300
_QUOTE_WORDS = ("\n>", "from: ", "_" * 10, "wrote:", "a écrit", "schrieb", "---")
_FORWARD_WORDS = ("original message", "forwarded message", "ursprüngliche nachricht",
                  "message d'origine", "mensaje original", "messaggio originale")
_MIME_LEAD = re.compile(
    r"(?:[ \t]*\r?\n|this is a (?:multi-?part|mime[- ]encapsulated) message[^\n]*\n|--[^\s]+[ \t]*\r?\n"
    r"|(?:content-[a-z-]+|mime-version)[ \t]*:[^\n]*\n(?:[ \t]+[^\n]*\n)*)*",
    re.IGNORECASE,
)
_CTE = re.compile(r"content-transfer-encoding[ \t]*:[ \t]*([a-z0-9-]+)", re.IGNORECASE)
_TAGS = re.compile(r"<[^<>]{0,400}>")
_ENTITY = re.compile(r"&(nbsp|#160|amp|lt|gt|quot|#39);")


def _decode_part(text: str, encoding: str) -> str:
    if encoding == "base64":
        chunk = "".join(text.split()).partition("--")[0]
        chunk = chunk[: len(chunk) - len(chunk) % 4]
        try:
            return base64.b64decode(chunk, validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return text
    if encoding == "quoted-printable":
        return quopri.decodestring(text.encode("utf-8", "replace")).decode("utf-8", "replace")
    return text


def _quote_line(line: str) -> bool:
    """A line that starts quoted or forwarded text: what follows is someone else's words."""
    if line.startswith((">", "from: ", "_" * 10)):
        return True
    if line.startswith("---"):
        return any(map(line.__contains__, _FORWARD_WORDS))
    return ((line.startswith("on ") and line.endswith("wrote:")) or "a écrit" in line
            or (line.startswith("am ") and "schrieb" in line))


def opening_text(message: Message) -> str:
    """The first words of the first text part, lowercased on one line, quoted text cut off."""
    raw = message.body[:TEXT_PREFIX]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    skipped = _MIME_LEAD.match(text)  # the preamble, boundaries and part headers
    pos = skipped.end() if skipped else 0
    encoding = (message.get("content-transfer-encoding") or "").strip().lower()
    if pos:
        found = _CTE.findall(text, 0, pos)
        if found:
            encoding = found[-1].lower()
    # bounces and auto-replies say what they are in the opening lines
    end = text.find("\n", pos + _OPENING)
    body = _decode_part(text[pos: len(text) if end < 0 else end], encoding).lower()
    if "<" in body and ">" in body:
        body = _ENTITY.sub(" ", _TAGS.sub(" ", body))
    if body.startswith(">") or any(map(body.__contains__, _QUOTE_WORDS)):
        kept: list[str] = []
        for line in body.split("\n"):
            line = line.strip()
            if line and _quote_line(line):
                break
            kept.append(line)
        body = " ".join(kept)
    return " ".join(body.split())
