"""The lease keeper: a thread that renews and claims mailbox leases and starts or stops their workers.

Order matters. A lost lease is dropped from the fence first (the store refuses the mailbox's
writes and sends at once), then its workers are stopped. A lease held beyond the fair share
is dropped from the fence, its workers stopped, and only then released in the database. A
gained lease enters the fence before its workers start. When the database cannot be reached,
nothing can be renewed: once the leases may be within `margin` of expiry every mailbox is
treated as lost (the store would refuse anyway), and claimed again when the database is back.

Starting or stopping the workers of hundreds of mailboxes can take longer than a lease on a
busy host (each thread start waits for the new thread to run). A second thread renews what
the fence holds whenever no round has renewed for a round's interval, so a host never loses
its own leases, and never looks dead to the others, while its round is busy.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from awayd.errors import StateError

if TYPE_CHECKING:  # psycopg is optional: only a PostgreSQL state loads it
    from awayd.adapters.leases_pg import Fence, LeaseTable


def host_id() -> str:
    """This process: host name, PID and a random part (a restarted process is a new host)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Runs lease rounds every `every` seconds on its own thread."""

    def __init__(self, table: LeaseTable, fence: Fence, *, log: Any,
                 gain: Callable[[list[str]], None], lose: Callable[[list[str]], None],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self.fence = fence
        self.log = log
        self._gain = gain
        self._lose = lose
        self._monotonic = monotonic
        self._mailboxes: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewer: threading.Thread | None = None
        self._last_ok = monotonic()
        self._down = False
        self._lock = threading.Lock()  # one round at a time (the thread, a reload)
        # one lease transaction at a time (a round's, the renewal thread's): they share one
        # connection, as a second one may not connect in time on a host starved for CPU
        self._db = threading.Lock()
        period = table.period
        # Claims run often so a dead host's mailboxes are taken soon after expiry; renewals
        # need only one success per third of the period.
        self.every = min(period / 3, 2.0)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, mailboxes: Iterable[str]) -> None:
        self._mailboxes = sorted(set(mailboxes))
        # first: the first round starts the workers of every mailbox it gained
        self._renewer = threading.Thread(target=self._renew, name="leases-renew", daemon=True)
        self._renewer.start()
        self.round()
        self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
        self._thread.start()

    def configure(self, mailboxes: Iterable[str]) -> None:
        """A reload: mailboxes gone from the config are let go, new ones claimed."""
        self._mailboxes = sorted(set(mailboxes))
        gone = sorted(set(self.fence.held()) - set(self._mailboxes))
        if gone:
            self._let_go(gone, "removed from the config")
        self.round()

    def _run(self) -> None:
        wait = self.every
        while not self._stop.wait(wait):
            next_free = self.round()
            # a dead host's lease runs out before the next round: claim it the moment it does
            wait = self.every if next_free is None else min(self.every, next_free + 0.05)

    def _renew(self) -> None:
        while not self._stop.wait(self.every):
            if self._monotonic() - self._last_ok < self.every:
                continue  # a round renewed lately
            try:
                with self._db:
                    self.table.renew(self.fence.held())
            except StateError:
                continue  # the round reports it and lets go in time
            self._last_ok = self._monotonic()

    def round(self) -> float | None:
        """One round; returns the seconds until another host's lease runs out while this one
        is below its fair share (None otherwise)."""
        with self._lock:
            held = self.fence.held()
            try:
                with self._db:
                    result = self.table.round(self._mailboxes, held)
            except StateError as err:
                self._unreachable(err)
                return None
            self._last_ok = self._monotonic()
            if self._down:
                self._down = False
                self.log.info("lease.store_back")
            if result.lost:
                for name in result.lost:
                    self.fence.drop(name)
                self.log.warning("lease.lost", mailboxes=list(result.lost),
                                 note="another host works on them now")
                self._lose(list(result.lost))
            if result.excess:
                self._let_go(list(result.excess), f"fair share with {result.hosts} hosts")
            if result.gained:
                for name, epoch in result.gained.items():
                    self.fence.hold(name, epoch)
                self.log.info("lease.acquired", mailboxes=sorted(result.gained),
                              epochs=[result.gained[m] for m in sorted(result.gained)],
                              hosts=result.hosts)
                self._gain(sorted(result.gained))
            return result.next_free

    def _let_go(self, names: list[str], why: str) -> None:
        held = self.fence.held()
        for name in names:
            self.fence.drop(name)
        self._lose(names)
        try:
            with self._db:
                self.table.release({n: held[n] for n in names if n in held})
        except StateError as err:  # they expire by themselves
            self.log.warning("lease.release_failed", mailboxes=names, error=str(err))
        self.log.info("lease.released", mailboxes=names, reason=why)

    def _unreachable(self, err: StateError) -> None:
        if not self._down:
            self._down = True
            self.log.error("lease.renew_failed", error=str(err),
                           note="mailboxes stop before their leases run out")
        held = self.fence.held()
        if held and self._monotonic() - self._last_ok >= self.table.period - self.fence.margin - self.every:
            for name in held:
                self.fence.drop(name)
            self.log.warning("lease.lost", mailboxes=sorted(held), note="cannot renew")
            self._lose(sorted(held))

    def stop(self) -> None:
        """Stop the rounds (the caller stops workers, then calls leave())."""
        self._stop.set()
        for thread in (self._thread, self._renewer):
            if thread is not None:
                thread.join(timeout=10)

    def leave(self) -> None:
        for name in self.fence.held():
            self.fence.drop(name)
        try:
            with self._db:
                self.table.leave()
        except StateError as err:
            self.log.warning("lease.release_failed", error=str(err), note="they expire by themselves")
