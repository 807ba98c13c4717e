"""One message whose handling raises is recorded with a decision and the folder moves on; a store
that cannot commit is not the message's fault (SQLite on disk, no mocks of the store)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from awayd.adapters.store_sqlite import SqliteStore
from awayd.config.load import parse_config
from awayd.errors import StateError
from awayd.outbox import Outbox
from awayd.pipeline import Incoming, NoEvents, Pipeline

NOW = datetime(2026, 12, 22, 9, 0, tzinfo=UTC)
CONFIG = """
smtp: {host: 127.0.0.1, port: 2525, security: none}
mailboxes:
  - name: alice
    address: alice@example.org
    rules: [{name: away, interval: 7d, text: "Away."}]
"""
RAW = (b"Return-Path: <bob@example.net>\r\nFrom: Bob <bob@example.net>\r\n"
       b"To: alice@example.org\r\nSubject: hi\r\nMessage-ID: <m1@example.net>\r\n\r\nbody\r\n")


class BrokenHistoryStore(SqliteStore):
    """The real store, whose history lookup trips over a bug for one sender."""

    def replied_since(self, mailbox: str, sender_key: str, rule_handle: str,
                      since: datetime) -> bool:
        if sender_key == "bob@example.net":
            raise KeyError("a bug in a lookup")
        return super().replied_since(mailbox, sender_key, rule_handle, since)


class CountingEvents(NoEvents):
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def message_error(self, mailbox: str, reason: str) -> None:
        self.errors.append((mailbox, reason))


def pipeline_for(store: Any, events: CountingEvents) -> Pipeline:
    log = structlog.get_logger("test")
    outbox = Outbox(store=store, clock=lambda: NOW, log=log, make_sender=_no_sender)
    return Pipeline(store=store, clock=lambda: NOW, outbox=outbox, log=log, events=events)


def _no_sender(settings: Any) -> Any:
    raise AssertionError("nothing is sent in these tests")


def test_an_error_while_deciding_is_recorded_logged_once_and_the_checkpoint_moves(
    tmp_path: Path
) -> None:
    mailbox = parse_config(CONFIG, "t.yaml").mailboxes[0]
    store = BrokenHistoryStore.open(tmp_path / "state.db")
    events = CountingEvents()
    pipeline = pipeline_for(store, events)
    try:
        with capture_logs() as logs:
            decision = pipeline.process(Incoming(mailbox, "INBOX", 1, 5, NOW, RAW))
        assert decision.reason == "malformed"
        checkpoint = store.get_checkpoint("alice", "INBOX")
        assert checkpoint is not None
        assert checkpoint.last_uid == 5
        errors = [e for e in logs if e["log_level"] == "error"]
        assert len(errors) == 1
        assert errors[0]["event"] == "message.processed"
        assert (errors[0]["mailbox"], errors[0]["folder"], errors[0]["uid"]) == ("alice", "INBOX", 5)
        assert "a bug in a lookup" in errors[0]["error"]
        assert events.errors == [("alice", "malformed")]
    finally:
        pipeline.outbox.close(1.0)
        store.close()


def test_a_store_that_cannot_commit_raises_and_records_nothing(tmp_path: Path) -> None:
    mailbox = parse_config(CONFIG, "t.yaml").mailboxes[0]
    store = SqliteStore.open(tmp_path / "state.db")
    pipeline = pipeline_for(store, CountingEvents())
    store.close()  # every read and write now fails, as on a broken disk
    try:
        with capture_logs() as logs, pytest.raises(StateError):
            pipeline.process(Incoming(mailbox, "INBOX", 1, 5, NOW, RAW))
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["store.write_failed"]
        assert not pipeline.outbox.health.ok
    finally:
        pipeline.outbox.close(1.0)
