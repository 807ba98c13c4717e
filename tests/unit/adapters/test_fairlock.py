"""The state store's lock: waiters get it in the order they asked; it is re-entrant."""

from __future__ import annotations

import threading

import pytest

from awayd.adapters.fairlock import FairRLock


def _queued(lock: FairRLock, n: int) -> None:
    """Wait until `n` threads are queued on `lock` (they block only once queued)."""
    done = threading.Event()
    while not done.wait(0.001):
        with lock._mutex:  # the test looks at the queue it is about
            if len(lock._waiters) >= n:
                done.set()


def test_a_released_lock_goes_to_the_longest_waiter_not_back_to_its_holder() -> None:
    lock = FairRLock()
    order: list[str] = []

    def take(name: str) -> None:
        with lock:
            order.append(name)

    lock.acquire()
    first = threading.Thread(target=take, args=("first waiter",))
    first.start()
    _queued(lock, 1)
    second = threading.Thread(target=take, args=("second waiter",))
    second.start()
    _queued(lock, 2)
    lock.release()
    take("holder again")  # threading.RLock would let this thread straight back in
    first.join(5)
    second.join(5)
    assert order == ["first waiter", "second waiter", "holder again"]


def test_the_holder_can_take_it_again_and_must_release_as_often() -> None:
    lock = FairRLock()
    lock.acquire()
    lock.acquire()  # a plain Lock would deadlock here
    lock.release()
    assert not _free(lock)
    lock.release()
    assert _free(lock)


def _free(lock: FairRLock) -> bool:
    """Whether nobody holds the lock now."""
    with lock._mutex:
        return lock._owner is None


def test_releasing_a_lock_this_thread_does_not_hold_is_an_error() -> None:
    lock = FairRLock()
    with pytest.raises(RuntimeError):
        lock.release()
