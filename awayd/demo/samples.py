"""The demo's sample messages, and how an MTA would have stored them (trace headers on top)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from importlib.resources import files

ADDRESS = "alice@example.org"
MX = "mx.example.org"


@dataclass(frozen=True)
class Sample:
    """One sample: the file as its author's client sent it, and what the MTA saw of the envelope."""

    name: str
    file: str
    envelope_sender: str  # "" is the null sender of bounces
    expected: tuple[str, ...]  # acceptable reasons ("reply" for an answer)
    what: str


SAMPLES: tuple[Sample, ...] = (
    Sample("colleague", "colleague.eml", "marc.dubois@partner.example", ("reply",),
           "a person writes to Alice"),
    Sample("colleague-again", "colleague-again.eml", "marc.dubois@partner.example",
           ("already-replied",), "the same person writes again"),
    Sample("newsletter", "newsletter.eml", "newsletter@news.example", ("bulk", "list", "precedence"),
           "a marketing newsletter"),
    Sample("bounce", "bounce.eml", "", ("null-sender",), "a bounce (delivery failure report)"),
    Sample("autoreply", "autoreply.eml", "paul.weber@supplier.example", ("auto-submitted",),
           "someone else's out-of-office reply"),
    Sample("mailing-list", "mailing-list.eml", "users+bncAB12@lists.oss.example", ("list",),
           "a message from a mailing list"),
)


def load(sample: Sample, now: datetime, run: str | None = None) -> bytes:
    """The sample as submitted: `{date}` and `{run}` filled in (run keeps Message-IDs unique)."""
    text = files("awayd.demo").joinpath(sample.file).read_bytes().decode("utf-8")
    text = text.replace("{date}", format_datetime(now)).replace("{run}", run or secrets.token_hex(4))
    return text.encode("utf-8")


def as_delivered(submitted: bytes, envelope_sender: str, now: datetime,
                 recipient: str = ADDRESS) -> bytes:
    """Prepend what a delivery agent writes: Return-Path, Delivered-To and a Received line."""
    trace = (
        f"Return-Path: <{envelope_sender}>\r\n"
        f"Delivered-To: {recipient}\r\n"
        f"Received: from relay.example.net (relay.example.net [192.0.2.25])\r\n"
        f"\tby {MX} with ESMTPS id {secrets.token_hex(6)}\r\n"
        f"\tfor <{recipient}>; {format_datetime(now)}\r\n"
    )
    return trace.encode("ascii") + submitted
