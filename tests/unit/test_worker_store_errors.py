"""Tests for a folder worker whose store cannot commit: the IMAP side is not blamed, nothing is
skipped, and a connection opened before the store failed is closed."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from structlog.testing import capture_logs

from awayd.adapters.store_api import AlreadyRecorded, Fenced
from awayd.config.load import parse_config
from awayd.errors import StateError
from awayd.pipeline import Incoming
from awayd.worker import FENCED_RETRY_S, FolderWorker

NOW = datetime(2026, 12, 22, 9, 0, tzinfo=UTC)
CONFIG = """
smtp: {host: 127.0.0.1, port: 2525, security: none}
mailboxes:
  - name: alice
    address: alice@example.org
    imap: {host: 127.0.0.1, port: 1143, security: none, username: alice, password_env: X}
    rules: [{name: away, text: "Away."}]
"""


@dataclass(frozen=True)
class Fetched:
    uid: int
    internaldate: datetime
    raw: bytes


class FakeWatcher:
    def __init__(self, uids: list[int]) -> None:
        self.uids = uids
        self.closed = False

    def connect(self) -> tuple[int, int]:
        return 7, 1

    def fetch_new(self, after_uid: int, limit: int = 500, with_text: bool = False) -> list[Any]:
        return [Fetched(u, NOW, b"Subject: x\r\n\r\n") for u in self.uids if u > after_uid][:limit]

    def wait(self, timeout: float) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    @property
    def uses_idle(self) -> bool:
        return False


@dataclass
class Checkpoint:
    uidvalidity: int
    last_uid: int


class FakeStore:
    def __init__(self) -> None:
        self.full = True
        self.checkpoint: Checkpoint | None = None

    def get_checkpoint(self, mailbox: str, folder: str) -> Checkpoint | None:
        return self.checkpoint

    def set_checkpoint(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        if self.full:
            raise StateError("state database s.db: set a checkpoint: database or disk is full")
        self.checkpoint = Checkpoint(uidvalidity, last_uid)


class FakePipeline:
    def __init__(self) -> None:
        self.full = False
        self.done: list[int] = []

    def process(self, item: Incoming) -> None:
        if self.full:
            raise StateError("state database s.db: record a decision: database or disk is full")
        self.done.append(item.uid)


def make_worker(store: FakeStore, pipeline: FakePipeline, watchers: list[FakeWatcher],
                reconnects: list[str]) -> FolderWorker:
    mailbox = parse_config(CONFIG, "t.yaml").mailboxes[0]
    return FolderWorker(mailbox, "INBOX", pipeline=pipeline,  # type: ignore[arg-type]
                        store=store, make_watcher=lambda _m, _f: watchers.pop(0),
                        clock=lambda: NOW, log=structlog.get_logger("test"),
                        stop=threading.Event(), on_reconnect=reconnects.append)


def test_a_store_that_cannot_set_the_first_checkpoint_closes_the_new_connection() -> None:
    store, pipeline, reconnects = FakeStore(), FakePipeline(), []
    first, second = FakeWatcher([]), FakeWatcher([])
    worker = make_worker(store, pipeline, [first, second], reconnects)

    assert not worker.tick()
    assert first.closed
    assert worker.store_failures == 1
    assert worker.failures == 0  # not an IMAP failure: no IMAP backoff, no reconnect count
    assert reconnects == []
    assert 0 < worker.store_delay() <= 5.0

    store.full = False
    assert worker.tick()
    assert worker.watcher is second
    assert store.checkpoint == Checkpoint(7, 0)
    assert worker.store_failures == 0


def test_a_message_that_cannot_be_recorded_is_decided_again_on_the_same_connection() -> None:
    store, pipeline, reconnects = FakeStore(), FakePipeline(), []
    store.full, store.checkpoint = False, Checkpoint(7, 0)
    watcher = FakeWatcher([1, 2])
    worker = make_worker(store, pipeline, [watcher], reconnects)
    pipeline.full = True

    assert not worker.tick()
    assert worker.watcher is watcher
    assert not watcher.closed
    assert worker.last_uid == 0  # the checkpoint in memory did not move either
    assert reconnects == []

    pipeline.full = False
    assert worker.tick()
    assert pipeline.done == [1, 2]
    assert worker.last_uid == 2


class RefusingPipeline(FakePipeline):
    """Raises `error` for the UIDs in `refuse`, records the rest."""

    def __init__(self, error: StateError, refuse: set[int]) -> None:
        super().__init__()
        self.error = error
        self.refuse = refuse

    def process(self, item: Incoming) -> None:
        if item.uid in self.refuse:
            raise self.error
        super().process(item)


def test_a_fenced_mailbox_waits_for_the_lease_keeper_without_counting_a_store_failure() -> None:
    store = FakeStore()
    store.full, store.checkpoint = False, Checkpoint(7, 0)
    pipeline = RefusingPipeline(Fenced("mailbox alice is not leased to this host"), {1})
    watcher = FakeWatcher([1, 2])
    worker = make_worker(store, pipeline, [watcher], [])

    with capture_logs() as logs:
        assert not worker.tick()
        assert not worker.tick()
    assert worker.store_failures == 0  # not the store's fault
    assert worker.fenced == 2
    assert worker.store_delay() >= FENCED_RETRY_S * 2  # backs off: no retry every half second
    assert pipeline.done == []  # nothing after the refused message was decided
    assert worker.last_uid == 0
    # the store's fence logs lease.fenced; the folder adds no failure of its own
    assert [e["event"] for e in logs if e["log_level"] != "debug"] == ["imap.idle_unsupported"]

    pipeline.refuse = set()  # the lease turned out to be ours after all
    assert worker.tick()
    assert (pipeline.done, worker.fenced) == ([1, 2], 0)


def test_a_message_recorded_before_moves_the_folder_on_to_the_stored_checkpoint() -> None:
    store = FakeStore()
    store.full, store.checkpoint = False, Checkpoint(7, 0)
    pipeline = RefusingPipeline(AlreadyRecorded("alice INBOX uid 1 was already recorded"), {1})
    watcher = FakeWatcher([])
    worker = make_worker(store, pipeline, [watcher], [])
    assert worker.tick()  # connected at checkpoint 0
    watcher.uids = [1, 2, 3, 4]
    store.checkpoint = Checkpoint(7, 3)  # another host recorded 1 to 3 meanwhile

    with capture_logs() as logs:
        assert worker.tick()
    assert worker.store_failures == 0
    assert pipeline.done == [4]  # 2 and 3 are done: not decided again
    assert worker.last_uid == 4
    assert [(e["event"], e["log_level"], e["uid"]) for e in logs] == [
        ("message.already_recorded", "warning", 1)]
    assert worker.tick()  # and not tried again
    assert pipeline.done == [4]
