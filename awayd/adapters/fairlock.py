"""A re-entrant lock that hands itself to its waiters in the order they asked.

threading.RLock lets a thread that releases it take it again at once, ahead of threads that
were waiting: with a thousand folder threads recording a burst, the one relay thread that
needs the same lock to mark each reply sent could wait seconds for its turn. Here a released
lock goes to the longest waiter.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class FairRLock:
    """Re-entrant; first come, first served among waiters; used as a context manager."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._count = 0
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._count += 1
                return
            if self._owner is None:
                self._owner, self._count = me, 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        try:
            turn.acquire()  # released by the owner that hands the lock over
        except BaseException:
            # interrupted (a signal handler raised): leave the queue, or pass on a lock that
            # was handed over meanwhile, so that nobody waits for a turn no one will take
            with self._mutex:
                queued = turn in self._waiters
                if queued:
                    self._waiters.remove(turn)
                else:
                    self._owner, self._count = me, 1
            if not queued:
                self.release()
            raise
        with self._mutex:
            self._owner, self._count = me, 1

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release a lock this thread does not hold")
            self._count -= 1
            if self._count:
                return
            self._owner = None if not self._waiters else -1  # -1: handed over, taken soon
            if self._waiters:
                self._waiters.popleft().release()

    def __enter__(self) -> FairRLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
