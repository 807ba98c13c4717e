"""FolderWorker without a server: when a silent IDLE is checked, and the IDLE fallback notice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from structlog.testing import capture_logs

from awayd.config.model import ImapSettings, Mailbox, TlsSettings
from awayd.worker import IDLE_RENEW_S, FolderWorker


class SilentWatcher:
    """A watcher whose IDLE never reports anything; each wait() advances the fake clock."""

    def __init__(self, clock: list[float], *, idle: bool = True) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self.uses_idle = idle

    def connect(self) -> tuple[int, int]:
        return 1, 1

    def fetch_new(self, after_uid: int, limit: int = 500, with_text: bool = False) -> list[Any]:
        return []

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        self.clock[0] += timeout
        return False

    def close(self) -> None:
        pass


class NoStore:
    def get_checkpoint(self, mailbox: str, folder: str) -> None:
        return None

    def set_checkpoint(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        pass


def make_worker(clock: list[float], watcher: SilentWatcher, *, idle: bool = True,
                modes: list[tuple[str, str, bool]] | None = None) -> FolderWorker:
    imap = ImapSettings(host="imap.invalid", port=143, tls=TlsSettings(security="none"),
                        username="alice", password=None, idle=idle,
                        poll_interval=timedelta(seconds=60))
    mailbox = Mailbox(name="alice", address="alice@example.org", imap=imap)
    return FolderWorker(mailbox, "INBOX", pipeline=None, store=NoStore(),  # type: ignore[arg-type]
                        make_watcher=lambda _m, _f: watcher,
                        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
                        log=structlog.get_logger("test"), stop=threading.Event(),
                        monotonic=lambda: clock[0],
                        on_idle_mode=None if modes is None else
                        lambda m, f, used: modes.append((m, f, used)))


def test_a_silent_idle_asks_for_a_check_after_the_poll_interval() -> None:
    clock = [0.0]
    watcher = SilentWatcher(clock)
    worker = make_worker(clock, watcher)
    assert worker._idle(watcher, wake=30.0, check_every=60.0) is True
    assert watcher.waits == [30.0, 30.0]  # two silent wakes: then drain, whatever was pushed


def test_without_a_check_interval_a_silent_idle_waits_until_the_renewal() -> None:
    clock = [0.0]
    watcher = SilentWatcher(clock)
    worker = make_worker(clock, watcher)
    assert worker._idle(watcher, wake=30.0) is True
    assert sum(watcher.waits) == IDLE_RENEW_S


def test_a_server_without_idle_is_noted_once_and_reported_each_connect() -> None:
    clock = [0.0]
    watcher = SilentWatcher(clock, idle=False)
    modes: list[tuple[str, str, bool]] = []
    worker = make_worker(clock, watcher, modes=modes)
    with capture_logs() as logs:
        assert worker.tick()
        worker.close()
        assert worker.tick()
    assert [e["event"] for e in logs if e["event"] == "imap.idle_unsupported"] == [
        "imap.idle_unsupported"]
    assert modes == [("alice", "INBOX", False)] * 2


def test_idle_false_in_the_config_is_not_a_server_shortcoming() -> None:
    clock = [0.0]
    watcher = SilentWatcher(clock, idle=False)
    worker = make_worker(clock, watcher, idle=False)
    with capture_logs() as logs:
        assert worker.tick()
    assert not [e for e in logs if e["event"] == "imap.idle_unsupported"]
