"""Fold header bodies for the wire: encoded words of at most 75, lines of at most 78 characters.

RFC 2047 §2 limits an encoded word to 75 characters and each holds whole characters; RFC 5322
§2.1.1 asks for lines of at most 78 wherever a line can be folded (never inside a message id
or an address, which are not encoded either).
"""

from __future__ import annotations

import base64

LINE = 78  # RFC 5322 §2.1.1: SHOULD fold at 78
WORD = 75  # RFC 2047 §2: an encoded word is at most 75 characters
FOLD = "\r\n "
_PREFIX = {"q": "=?utf-8?q?", "b": "=?utf-8?b?"}
_OVERHEAD = len("=?utf-8?q?") + len("?=")
# RFC 2047 §5(3): the characters a Q-encoded word may carry as they are, even in a phrase
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def _q(ch: str) -> str:
    if ch in _Q_SAFE:
        return ch
    if ch == " ":
        return "_"
    return "".join(f"={b:02X}" for b in ch.encode("utf-8"))


def _b_len(n_bytes: int) -> int:
    return -(-n_bytes // 3) * 4


def encoded_words(text: str, first: int = WORD) -> list[str]:
    """`text` as UTF-8 encoded words: the first at most `first` characters, the others 75.

    Each word holds whole characters. Q or B, whichever is shorter for the whole text.
    """
    raw = text.encode("utf-8")
    q_len = sum(len(_q(ch)) for ch in text)
    kind = "q" if q_len <= _b_len(len(raw)) else "b"
    words: list[str] = []
    budget = max(first, 24) - _OVERHEAD
    chunk: list[str] = []
    size = 0  # Q: encoded length so far; B: bytes so far
    for ch in text:
        add = len(_q(ch)) if kind == "q" else len(ch.encode("utf-8"))
        grown = size + add if kind == "q" else _b_len(size + add)
        if chunk and grown > budget:
            words.append(_word(kind, "".join(chunk)))
            chunk, size, budget = [], 0, WORD - _OVERHEAD
        chunk.append(ch)
        size += add
    if chunk or not words:
        words.append(_word(kind, "".join(chunk)))
    return words


def _word(kind: str, text: str) -> str:
    if kind == "q":
        payload = "".join(_q(ch) for ch in text)
    else:
        payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return f"{_PREFIX[kind]}{payload}?="


def _join(words: list[str], used: int) -> str:
    """Words separated by a space, or by a fold where the line would pass 78 characters."""
    out: list[str] = []
    width = used
    for i, word in enumerate(words):
        if i == 0:
            out.append(word)
            width += len(word)
        elif width + 1 + len(word) <= LINE:
            out.append(" " + word)
            width += 1 + len(word)
        else:
            out.append(FOLD + word)
            width = 1 + len(word)
    return "".join(out)


def _plain_fold(value: str, used: int) -> str | None:
    """ASCII text folded at its spaces; None when a piece cannot fit on a line of 78."""
    pieces = value.split(" ")
    if any(not p for p in pieces):  # a double space would leave a line of blanks when folded
        return None
    if used + len(pieces[0]) > LINE or any(1 + len(p) > LINE for p in pieces[1:]):
        return None
    return _join(pieces, used)


def _needs_encoding(value: str) -> bool:
    return not value.isascii() or not value.isprintable() or "=?" in value


def unstructured(name: str, value: str) -> str:
    """The body of an unstructured field such as Subject, encoded and folded."""
    used = len(name) + 2
    if not _needs_encoding(value):
        if used + len(value) <= LINE:
            return value
        folded = _plain_fold(value, used)
        if folded is not None:
            return folded
    return _join(encoded_words(value, LINE - used), used)


def phrase(display: str, used: int) -> str:
    """A display name for an address field: as is when plain, else encoded words."""
    if not _needs_encoding(display) and _is_atoms(display):
        folded = _plain_fold(display, used)
        if folded is not None:
            return folded
    if not _needs_encoding(display) and used + len(display) + 2 <= LINE:
        return _quoted(display)
    return _join(encoded_words(display, LINE - used), used)


def _is_atoms(text: str) -> bool:
    return bool(text) and all(_is_atext(c) or c == " " for c in text) and not text.startswith(" ")


def _is_atext(c: str) -> bool:
    return c.isalnum() or c in "!#$%&'*+-/=?^_`{|}~"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox(name: str, display: str, address: str) -> str:
    """`display <address>` with the name encoded and the address on a new line if need be."""
    used = len(name) + 2
    if not display:
        return address
    head = phrase(display, used)
    last = len(head.rpartition("\r\n")[2]) if "\r\n" in head else used + len(head)
    angle = f"<{address}>"
    sep = " " if last + 1 + len(angle) <= LINE else FOLD
    return f"{head}{sep}{angle}"


def ids(name: str, value: str) -> str:
    """Message ids, never encoded (that would break threading), folded between them only."""
    return _join(value.split(), len(name) + 2)
