"""Choose the reply language: Content-Language, then detection on subject and text, then default."""

from __future__ import annotations

import contextlib
import copy
import html
import quopri
import re
from functools import lru_cache
from typing import Any

from awayd.core.message import Message

_MIN_CONFIDENCE = 0.80
_MIN_LETTERS = 12
_TAG = re.compile(r"<[^>]{0,2000}>")
_MIME_LINE = re.compile(r"^(--|content-[a-z-]+:|mime-version:|\s*charset=)", re.IGNORECASE)


@lru_cache(maxsize=1)
def _model() -> Any:
    """Load py3langid's bundled model once; its data ships inside the wheel (no download)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # noqa: PLC0415 (loads numpy)

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=256)
def _restricted(languages: tuple[str, ...]) -> Any:
    identifier = _model()
    clone = copy.copy(identifier)  # shares the read-only model arrays
    clone.set_languages(list(languages))
    return clone


def detect(text: str, candidates: tuple[str, ...]) -> str | None:
    """The most likely of `candidates` for `text`, or None when unsure or too short."""
    text = text[:240]  # enough for a clear verdict on a sentence or two; cost grows with length
    letters = sum(map(str.isalpha, text))
    if letters < _MIN_LETTERS or len(candidates) < 2:
        return None
    known = tuple(sorted(c for c in candidates if c in _model()._full_model[2]))
    if len(known) < 2:
        return None
    lang, confidence = _restricted(known).classify(text)
    return str(lang) if confidence >= _MIN_CONFIDENCE else None


def readable_text(message: Message) -> str:
    """Subject plus a best-effort plain reading of the body prefix, for detection only."""
    body = message.body
    encoding = (message.get("content-transfer-encoding") or "").strip().lower()
    if encoding == "quoted-printable" or b"=\n" in body or b"=\r\n" in body:
        with contextlib.suppress(ValueError):
            body = quopri.decodestring(body)
    text = body.decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines() if not _MIME_LINE.match(ln) and not ln.startswith(">")]
    plain = html.unescape(_TAG.sub(" ", "\n".join(lines)))
    if re.fullmatch(r"[A-Za-z0-9+/=\s]*", plain) and len(plain) > 40:
        plain = ""  # a base64 part: nothing readable
    return f"{message.subject}\n{plain}"


def choose(message: Message, available: tuple[str, ...], default: str) -> str:
    """Pick the reply language among `available` (the default plus the rule's translations)."""
    for value in message.get_all("content-language"):
        for tag in value.split(","):
            primary = tag.strip().split("-")[0].lower()
            if primary in available:
                return primary
    if len(available) > 1:
        found = detect(readable_text(message), available)
        if found is not None:
            return found
    return default
