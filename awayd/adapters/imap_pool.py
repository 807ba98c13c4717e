"""Logged-in IMAP connections kept for the next push event of the same user and folder."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from awayd.adapters.imap import FetchedMessage, FolderStatus, FolderWatcher
from awayd.config.model import ImapSettings
from awayd.errors import SourceError

#: A connection unused this long is logged out (Dovecot's own autologout is 30 min).
MAX_IDLE_S = 60.0

Key = tuple[ImapSettings, str]


class WatcherPool:
    """At most `size` idle FolderWatchers, the least recently used logged out first.

    A watcher is taken out while one thread uses it, so it is never shared. Thread-safe.
    """

    def __init__(self, size: int, make: Callable[[ImapSettings, str], FolderWatcher], *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.make = make
        self.monotonic = monotonic
        self._idle: OrderedDict[Key, list[tuple[FolderWatcher, float]]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def take(self, settings: ImapSettings, folder: str) -> FolderWatcher | None:
        with self._lock:
            stack = self._idle.get((settings, folder))
            if not stack:
                return None
            watcher, _since = stack.pop()
            if not stack:
                del self._idle[(settings, folder)]
            self._count -= 1
            return watcher

    def give(self, watcher: FolderWatcher) -> None:
        """Keep a still connected watcher for later; the oldest beyond `size` is logged out."""
        if not watcher.connected:
            return
        evicted: list[FolderWatcher] = []
        with self._lock:
            key = (watcher.settings, watcher.folder)
            self._idle.setdefault(key, []).append((watcher, self.monotonic()))
            self._idle.move_to_end(key)
            self._count += 1
            while self._count > self.size:
                evicted.append(self._pop_oldest())
        for old in evicted:
            old.close()

    def prune(self) -> int:
        """Log out every connection idle for MAX_IDLE_S; return how many."""
        cutoff = self.monotonic() - MAX_IDLE_S
        stale: list[FolderWatcher] = []
        with self._lock:
            for key in list(self._idle):
                keep = [(w, t) for w, t in self._idle[key] if t >= cutoff]
                stale += [w for w, t in self._idle[key] if t < cutoff]
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
            self._count -= len(stale)
        for watcher in stale:
            watcher.close()
        return len(stale)

    def close(self) -> None:
        with self._lock:
            every = [w for stack in self._idle.values() for w, _t in stack]
            self._idle.clear()
            self._count = 0
        for watcher in every:
            watcher.close()

    def __len__(self) -> int:
        return self._count

    def _pop_oldest(self) -> FolderWatcher:
        key, stack = next(iter(self._idle.items()))
        watcher, _since = stack.pop(0)
        if not stack:
            del self._idle[key]
        self._count -= 1
        return watcher


class PooledWatcher:
    """A worker's watcher in push mode: a pooled connection, re-EXAMINEd on connect(), given
    back on close(); never IDLE (events and the sweep wake the folder)."""

    def __init__(self, pool: WatcherPool, settings: ImapSettings, folder: str) -> None:
        self.pool = pool
        self.settings = settings
        self.folder = folder
        self._watcher: FolderWatcher | None = None
        self.reused = False

    @property
    def uses_idle(self) -> bool:
        return False

    def connect(self) -> FolderStatus:
        self.close()
        pooled = self.pool.take(self.settings, self.folder)
        if pooled is not None:
            try:
                status = pooled.refresh()
            except SourceError:
                pooled.close()  # logged out by the server meanwhile: a fresh one below
            else:
                self._watcher, self.reused = pooled, True
                return status
        watcher = self.pool.make(self.settings, self.folder)
        status = watcher.connect()
        self._watcher, self.reused = watcher, False
        return status

    def fetch_new(self, after_uid: int, limit: int = 500, with_text: bool = False
                  ) -> list[FetchedMessage]:
        return self._ready().fetch_new(after_uid, limit=limit, with_text=with_text)

    def wait(self, timeout: float) -> bool:
        return self._ready().wait(0)

    def close(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            self.pool.give(watcher)

    def _ready(self) -> FolderWatcher:
        if self._watcher is None:
            raise SourceError(f"IMAP {self.settings.username}: folder {self.folder} is not connected")
        return self._watcher


