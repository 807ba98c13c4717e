"""Fixtures for the pure core: inline configs, message builders and a fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from awayd.config.load import parse_config
from awayd.config.model import Mailbox
from awayd.core.decide import Decision, decide
from awayd.core.history import EmptyHistory, HistoryView

#: Tuesday 22 December 2026, 10:00 in Paris: inside the sample holidays.
NOW = datetime(2026, 12, 22, 9, 0, tzinfo=UTC)

PERMISSIVE = """
mailboxes:
  - name: alice
    address: alice@example.org
    aliases: [alice.smith@example.org, devis@example.org]
    display_name: Alice Smith
    timezone: Europe/Paris
    language: fr
    internal_domains: [example.org]
    rules:
      - name: always
        interval: 0
        reply_to: Bob Martin <bob@example.org>
        text: |
          Bonjour {{ sender.first_name }}, réf. {{ ticket }}.
        html: "<p>Bonjour {{ sender.name }}</p>"
        translations:
          en: {text: "Hello {{ sender.first_name }}, ref. {{ ticket }}."}
          de: {subject: "Automatische Antwort: {{ subject }}", text: "Hallo"}
"""

MailboxFactory = Callable[..., Mailbox]
Builder = Callable[..., bytes]
Decider = Callable[..., Decision]


def _mailbox(yaml_text: str = PERMISSIVE, base_dir: Path | None = None, index: int = 0) -> Mailbox:
    return parse_config(yaml_text, "test.yaml", base_dir).mailboxes[index]


@pytest.fixture(scope="session")
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def make_mailbox() -> MailboxFactory:
    """Parse an inline YAML config and return one of its mailboxes."""
    return _mailbox


@pytest.fixture(scope="session")
def permissive() -> Mailbox:
    """A mailbox whose one rule answers everything, every time (interval 0)."""
    return _mailbox()


def _eml(*, return_path: str | None = "<bob@example.net>",
         from_: str | None = "Bob Martin <bob@example.net>",
         to: str | None = "alice@example.org", subject: str | None = "Lunch",
         message_id: str | None = "<lunch.1@example.net>",
         extra: tuple[str, ...] = (), body: str = "Hello Alice\n", eol: str = "\r\n") -> bytes:
    lines: list[str] = []
    if return_path is not None:
        lines.append(f"Return-Path: {return_path}")
    if from_ is not None:
        lines.append(f"From: {from_}")
    if to is not None:
        lines.append(f"To: {to}")
    if subject is not None:
        lines.append(f"Subject: {subject}")
    if message_id is not None:
        lines.append(f"Message-ID: {message_id}")
    lines.extend(extra)
    return (eol.join(lines) + eol + eol + body.replace("\n", eol)).encode("utf-8")


@pytest.fixture(scope="session")
def eml() -> Builder:
    """Build a message: keyword arguments set or drop (None) the usual headers."""
    return _eml


@pytest.fixture(scope="session")
def run(permissive: Mailbox) -> Decider:
    """decide() at NOW with no history and a fixed reply Message-ID."""

    def _run(raw: bytes, mailbox: Mailbox | None = None, *, now: datetime = NOW,
             history: HistoryView | None = None, arrival: datetime | None = None) -> Decision:
        return decide(raw, mailbox or permissive, now=now, history=history or EmptyHistory(),
                      new_message_id=lambda domain: f"<awayd.test@{domain}>", arrival=arrival)

    return _run
