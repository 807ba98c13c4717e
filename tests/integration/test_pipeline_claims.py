"""A reply claimed meanwhile by another host is recorded as already-replied, never queued twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from awayd.adapters.store_pg import PostgresStore
from awayd.adapters.store_sqlite import SqliteStore
from awayd.config.load import parse_config
from awayd.core import reasons as r
from awayd.pipeline import Incoming, Pipeline

CONFIG = """
mailboxes:
  - name: alice
    address: alice@example.org
    timezone: Europe/Paris
    rules: [{name: away, text: "Away.", interval: 7d}]
"""
NOW = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def message(n: int) -> bytes:
    return (f"Return-Path: <bob@example.net>\r\nFrom: Bob <bob@example.net>\r\n"
            f"To: alice@example.org\r\nSubject: n{n}\r\n"
            f"Message-ID: <n{n}@example.net>\r\n\r\nHello\r\n").encode()


class _Health:
    def failed(self, *args: Any, **kw: Any) -> None: ...

    def recovered(self) -> None: ...


class _Outbox:
    def __init__(self) -> None:
        self.health = _Health()
        self.submitted: list[int] = []

    def submit(self, outbox_id: int, mailbox: str) -> None:
        self.submitted.append(outbox_id)


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **kw: None


class StaleReads:
    """A store whose history reads miss what another host recorded a moment ago."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def replied_since(self, *args: Any) -> bool:
        return False

    def decision_history(self, mailbox: str, now: datetime) -> StaleReads:
        return self  # the stale reads, not the store's own view of one decision

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_reply_won_by_another_host_is_recorded_as_already_replied(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    config = parse_config(CONFIG)
    mailbox = config.mailboxes[0]
    store: Any = (SqliteStore.open(tmp_path / "state.db") if backend == "sqlite"
                  else PostgresStore.open(request.getfixturevalue("pg_url")))
    with store:
        outbox = _Outbox()
        other_host = Pipeline(store=store, clock=lambda: NOW, outbox=outbox, log=_Log())  # type: ignore[arg-type]
        this_host = Pipeline(store=StaleReads(store), clock=lambda: NOW, outbox=outbox,  # type: ignore[arg-type]
                             log=_Log())
        first = other_host.process(Incoming(mailbox, "INBOX", 7, 1, None, message(1)))
        second = this_host.process(Incoming(mailbox, "INBOX", 7, 2, None, message(2)))
        assert (first.reason, second.reason) == (r.REPLY, r.ALREADY_REPLIED)
        assert second.reply is None
        assert len(outbox.submitted) == 1
        assert store.pending_count() == 1
        report = store.report(NOW.replace(year=2025))
        reasons = {rc.reason: rc.count for rc in report.mailboxes[0].reasons}
        assert reasons == {r.REPLY: 1, r.ALREADY_REPLIED: 1}
        assert store.get_checkpoint("alice", "INBOX").last_uid == 2
