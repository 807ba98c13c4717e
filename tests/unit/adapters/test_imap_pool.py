"""The pool of idle IMAP connections: reuse per user and folder, LRU bound, idle expiry."""

from __future__ import annotations

from datetime import timedelta

from awayd.adapters.imap import FolderWatcher
from awayd.adapters.imap_pool import MAX_IDLE_S, WatcherPool
from awayd.config.model import ImapSettings, SecretSource, TlsSettings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Connected(FolderWatcher):
    """A FolderWatcher that counts as connected without a server (the pool only asks that)."""

    @property
    def connected(self) -> bool:
        return not getattr(self, "was_closed", False)

    def close(self) -> None:
        self.was_closed = True


def settings(user: str) -> ImapSettings:
    return ImapSettings(host="127.0.0.1", port=143, tls=TlsSettings("none"), username=user,
                        password=SecretSource(env="X"), poll_interval=timedelta(seconds=1))


def test_a_connection_is_reused_for_the_same_user_and_folder_only() -> None:
    pool = WatcherPool(4, Connected)
    first = Connected(settings("a"), "INBOX")
    pool.give(first)
    assert pool.take(settings("b"), "INBOX") is None
    assert pool.take(settings("a"), "Sent") is None
    assert pool.take(settings("a"), "INBOX") is first
    assert pool.take(settings("a"), "INBOX") is None


def test_the_least_recently_given_is_logged_out_beyond_the_size() -> None:
    pool = WatcherPool(2, Connected)
    made = [Connected(settings(u), "INBOX") for u in "abc"]
    for watcher in made:
        pool.give(watcher)
    assert len(pool) == 2
    assert not made[0].connected
    assert pool.take(settings("a"), "INBOX") is None
    assert pool.take(settings("c"), "INBOX") is made[2]


def test_a_disconnected_watcher_is_not_kept_and_idle_ones_expire() -> None:
    clock = Clock()
    pool = WatcherPool(4, Connected, monotonic=clock)
    gone = Connected(settings("a"), "INBOX")
    gone.close()
    pool.give(gone)
    assert len(pool) == 0
    pool.give(Connected(settings("b"), "INBOX"))
    clock.now = MAX_IDLE_S / 2
    pool.give(Connected(settings("c"), "INBOX"))
    clock.now = MAX_IDLE_S + 1
    assert pool.prune() == 1
    assert pool.take(settings("b"), "INBOX") is None
    assert pool.take(settings("c"), "INBOX") is not None
