"""The push dispatcher's bookkeeping on reload: which folders a new configuration sweeps at once."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from awayd.adapters.imap_pool import WatcherPool
from awayd.adapters.store_sqlite import SqliteStore
from awayd.config.load import parse_config
from awayd.config.model import Mailbox, SecretSource
from awayd.push.dispatch import PushDispatcher, PushFolder, sweep_width
from awayd.push.events import PushEvent
from awayd.push.mode import PushMode

HEAD = """\
smtp: {host: smtp.example.org}
push: {listen: '127.0.0.1:8787', token_env: T}
defaults:
  imap: {host: imap.example.org, master_user: awayd, master_password_file: /m, push: true}
  rules: [{name: away, text: "Absent."}]
mailboxes:
"""


def mailboxes(*lines: str) -> tuple[Mailbox, ...]:
    return parse_config(HEAD + "".join(f"  - {line}\n" for line in lines)).mailboxes


V = 1712345678  # the folders' UIDVALIDITY


class Server:
    """One folder's messages on the IMAP server, and the UIDs a worker decided."""

    def __init__(self) -> None:
        self.uids: list[int] = []
        self.decided: list[int] = []


class Worker:
    """Stands in for a FolderWorker: the checkpoint handling of FolderWorker.tick (the first
    checkpoint at UIDNEXT - 1, then every UID above it in order) without IMAP."""

    def __init__(self, mailbox: Mailbox, folder: str, store: SqliteStore, server: Server) -> None:
        self.mailbox, self.folder, self.store, self.server = mailbox, folder, store, server
        self.log = structlog.get_logger().bind(mailbox=mailbox.name, folder=folder)
        self.uidvalidity = self.last_uid = 0
        self.ticks = self.closed = 0

    def tick(self) -> bool:
        self.ticks += 1
        name, folder = self.mailbox.name, self.folder
        checkpoint = self.store.get_checkpoint(name, folder)
        self.uidvalidity = V
        if checkpoint is None:
            self.last_uid = max(self.server.uids, default=0)  # the backlog is never answered
            self.store.set_checkpoint(name, folder, V, self.last_uid)
        else:
            self.last_uid = checkpoint.last_uid
        for uid in sorted(u for u in self.server.uids if u > self.last_uid):
            self.server.decided.append(uid)
            self.store.set_checkpoint(name, folder, V, uid)
            self.last_uid = uid
        return True

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "state.db") as opened:
        yield opened


class Host:
    """A dispatcher over stand-in workers, one Server per IMAP user."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.servers: dict[str, Server] = defaultdict(Server)

    def make_worker(self, mailbox: Mailbox, folder: str, _watcher: Callable[..., Any],
                    _stop: threading.Event) -> Any:
        assert mailbox.imap is not None
        return Worker(mailbox, folder, self.store, self.servers[mailbox.imap.username])

    def dispatcher(self, boxes: tuple[Mailbox, ...]) -> PushDispatcher:
        return PushDispatcher(boxes, pool=WatcherPool(0, lambda *_: None),  # type: ignore[arg-type, return-value]
                              workers=2, make_worker=self.make_worker, store=self.store,
                              log=structlog.get_logger())


def names(folders: list[PushFolder]) -> list[str]:
    return sorted(f"{f.mailbox.name}/{f.worker.folder}" for f in folders)


def test_a_reload_sweeps_new_folders_and_those_whose_imap_settings_changed(
        store: SqliteStore) -> None:
    host = Host(store)
    make_worker = host.make_worker
    first = mailboxes("{name: a, address: a@example.org}", "{name: b, address: b@example.org}",
                      "{name: c, address: c@example.org}",
                      "{name: r, address: r@example.org, rules: [{name: x, text: X}]}")
    d = host.dispatcher(first)
    try:
        assert len(d.folders) == 4
        second = mailboxes(
            "{name: a, address: a@example.org}",  # as it was
            "{name: b, address: b@example.org, imap: {timeout: 5s}}",  # IMAP settings changed
            "{name: renamed, address: c@example.org}",  # same user, another mailbox name
            "{name: r, address: r@example.org, rules: [{name: y, text: Y}]}",  # rules only
            "{name: n, address: n@example.org, imap: {folders: [INBOX, Team]}}")  # new
        fresh = d.update(second, make_worker)
        assert names(fresh) == ["b/INBOX", "n/INBOX", "n/Team", "renamed/INBOX"]
        assert sorted(d.folders) == sorted((u, f) for u, f in [
            ("a@example.org", "INBOX"), ("b@example.org", "INBOX"), ("c@example.org", "INBOX"),
            ("r@example.org", "INBOX"), ("n@example.org", "INBOX"), ("n@example.org", "Team")])
        # a kept folder works with the new configuration from now on (its rules changed)
        kept = d.folders[("r@example.org", "INBOX")]
        assert kept.worker.mailbox.rules[0].name == "y"
        assert kept.wake()
        assert kept.worker.ticks == 1  # type: ignore[attr-defined]
    finally:
        d.close()


def test_a_folder_busy_at_reload_takes_the_new_worker_at_its_next_wake(
        store: SqliteStore) -> None:
    host = Host(store)
    make_worker = host.make_worker
    d = host.dispatcher(mailboxes("{name: r, address: r@example.org, rules: [{name: x, text: X}]}"))
    try:
        folder = d.folders[("r@example.org", "INBOX")]
        old = folder.worker
        with folder.lock:  # a fetch in progress
            assert d.update(mailboxes(
                "{name: r, address: r@example.org, rules: [{name: y, text: Y}]}"), make_worker) == []
            assert folder.worker is old
            assert folder.mailbox.rules[0].name == "y"
        assert folder.wake()
        assert folder.worker is not old
        assert (old.closed, old.ticks, folder.worker.ticks) == (1, 0, 1)  # type: ignore[attr-defined]
    finally:
        d.close()


def test_a_removed_folder_is_left_alone_and_swept_at_once_when_it_comes_back(
        store: SqliteStore) -> None:
    host = Host(store)
    make_worker = host.make_worker
    d = host.dispatcher(mailboxes("{name: a, address: a@example.org}",
                             "{name: b, address: b@example.org}"))
    try:
        gone = d.folders[("b@example.org", "INBOX")]
        with gone.lock:  # a fetch in progress while the reload removes the folder
            assert d.update(mailboxes("{name: a, address: a@example.org}"), make_worker) == []
        assert ("b@example.org", "INBOX") not in d.folders
        assert "b@example.org" not in d.users
        assert gone.wake()  # an event queued before the reload: nothing fetched
        assert gone.worker.ticks == 0  # type: ignore[attr-defined]
        both = mailboxes("{name: a, address: a@example.org}", "{name: b, address: b@example.org}")
        assert d.update(both, make_worker) == [gone]  # the same lock again, swept at once
        assert gone.wake()
        assert gone.worker.ticks == 1  # type: ignore[attr-defined]
        # removed while idle: forgotten; a later return is a new folder, swept at once
        d.update(mailboxes("{name: a, address: a@example.org}"), make_worker)
        [again] = d.update(both, make_worker)
        assert again is not gone
        assert gone.wake()
        assert gone.worker.ticks == 1  # type: ignore[attr-defined]
    finally:
        d.close()


def test_a_sweep_leaves_threads_free_for_events() -> None:
    assert [sweep_width(n) for n in (1, 2, 4, 8, 9, 16)] == [1, 1, 1, 2, 2, 4]


def test_a_reload_keeps_push_mode_unless_the_endpoint_threads_or_pool_change() -> None:
    config = parse_config(HEAD + "  - {name: a, address: a@example.org}\n")
    settings = config.push
    assert settings is not None
    mode = PushMode(dispatcher=None, server=None, settings=settings, log=None)  # type: ignore[arg-type]
    assert mode.keeps(replace(settings, sweep_interval=timedelta(hours=1),
                              token=SecretSource(env="OTHER")))
    assert not mode.keeps(replace(settings, listen="127.0.0.1:9999"))
    assert not mode.keeps(replace(settings, workers=settings.workers + 1))
    assert not mode.keeps(replace(settings, pool=0))


def test_a_message_the_start_up_sweep_took_for_backlog_is_answered_when_its_event_comes(
        store: SqliteStore) -> None:
    """The sweep EXAMINEs a new folder between a delivery and its event: the message is below
    the first checkpoint, but its event reached the running endpoint, so it is answered, once."""
    host = Host(store)
    d = host.dispatcher(mailboxes("{name: a, address: a@example.org}"))
    try:
        folder = d.folders[("a@example.org", "INBOX")]
        host.servers["a@example.org"].uids = [1, 2]
        assert folder.wake()  # the start-up sweep: UIDs 1 and 2 taken for backlog
        assert host.servers["a@example.org"].decided == []
        event = PushEvent(user="a@example.org", folder="INBOX", uid=2, uidvalidity=V)
        assert folder.wake(event)
        assert host.servers["a@example.org"].decided == [2]  # 1 had no event: backlog
        assert folder.wake(event)  # a replay
        host.servers["a@example.org"].uids.append(3)
        assert folder.wake(PushEvent(user="a@example.org", folder="INBOX", uid=3, uidvalidity=V))
        assert folder.wake(PushEvent(user="a@example.org", folder="INBOX", uid=1, uidvalidity=V))
        assert host.servers["a@example.org"].decided == [2, 3]
    finally:
        d.close()


def test_a_checkpoint_from_before_the_start_is_never_lowered_by_an_event(
        store: SqliteStore) -> None:
    host = Host(store)
    store.set_checkpoint("a", "INBOX", V, 2)  # a previous run decided UIDs 1 and 2
    host.servers["a@example.org"].uids = [1, 2]
    d = host.dispatcher(mailboxes("{name: a, address: a@example.org}"))
    try:
        folder = d.folders[("a@example.org", "INBOX")]
        assert folder.wake()  # the start-up sweep
        assert folder.wake(PushEvent(user="a@example.org", folder="INBOX", uid=2, uidvalidity=V))
        assert host.servers["a@example.org"].decided == []
        checkpoint = store.get_checkpoint("a", "INBOX")
        assert checkpoint is not None
        assert checkpoint.last_uid == 2
    finally:
        d.close()
