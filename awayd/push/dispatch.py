"""Push-mode folders: an event or the sweep fetches everything after the folder's checkpoint.

Events are hints. A folder is always processed from its checkpoint upwards in UID order, under
the folder's lock, exactly as an IDLE or polled folder is: an event for UID 12 whose event for
UID 11 was lost processes 11 and 12; a late or repeated event finds its UID at or below the
checkpoint and does nothing. So the checkpoint stays "every UID up to here is decided", the
decisions table's key (mailbox, folder, uidvalidity, uid) is never hit twice, and the sweep
(a re-EXAMINE of every folder every sweep_interval) answers whatever no event announced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from awayd.adapters.imap_pool import PooledWatcher, WatcherPool
from awayd.config.model import Mailbox
from awayd.push.events import PushEvent
from awayd.worker import FolderWorker, Watcher

#: Builds the FolderWorker of one folder: (mailbox, folder, its watcher factory, stop event).
MakeWorker = Callable[[Mailbox, str, Callable[[Mailbox, str], Watcher], threading.Event],
                      FolderWorker]

def sweep_width(workers: int) -> int:
    """How many folders a sweep fetches at once: a quarter of the threads, at least one. The
    sweep is the safety net, not the answer: each of its folders costs Dovecot a login (and an
    imap process), and a sweep that keeps Dovecot busy slows down the logins of the events."""
    return max(1, workers // 4)


#: A folder whose fetch failed is tried once more at once: the pooled connection may have been
#: logged out by the server since its last use.
TRIES = 2


class PushFolder:
    """One folder of one push-mode mailbox; its FolderWorker holds a pooled connection only
    while it runs."""

    def __init__(self, worker: FolderWorker, store: Any) -> None:
        self.worker = worker
        self.store = store
        self.log = worker.log  # bound to the mailbox and folder
        self.lock = threading.Lock()
        #: a reloaded configuration's worker while a fetch is in progress (a reload never waits
        #: for one): taken at the next wake
        self._next: FolderWorker | None = None
        self.retired = False  # no longer in the configuration: events and sweeps skip it
        #: (uidvalidity, last_uid) of the first checkpoint a sweep of this process made: the
        #: messages up to it were taken for backlog, but one whose event reaches the running
        #: endpoint came while awayd listened (a sweep may EXAMINE the folder between the
        #: delivery and its event) and is answered
        self.born: tuple[int, int] | None = None
        self._known = False  # this process has seen the folder's checkpoint

    @property
    def mailbox(self) -> Mailbox:
        return (self._next or self.worker).mailbox

    def replace(self, worker: FolderWorker) -> None:
        """Work with `worker` (a reloaded configuration's) from now on, or from the next wake
        when a fetch is in progress. Between wakes a worker holds no connection, and the old
        one is let go at once: a host's previous configuration is not kept in memory."""
        self.retired = False
        if not self.lock.acquire(blocking=False):
            self._next = worker
            return
        try:
            self._next = None
            self.worker.close()
            self.worker, self.log = worker, worker.log
        finally:
            self.lock.release()

    def retire(self) -> None:
        self.retired = True

    @property
    def busy(self) -> bool:
        return self.lock.locked()

    def wake(self, event: PushEvent | None = None) -> bool:
        """Fetch and process everything new (after the checkpoint); False when IMAP failed."""
        with self.lock:
            if self.retired:
                return True
            if (worker := self._next) is not None:
                self._next = None
                self.worker.close()
                self.worker, self.log = worker, worker.log
            if event is not None and not self._wanted(event):
                return True
            first = event is None and not self._known and self.store.get_checkpoint(
                self.worker.mailbox.name, self.worker.folder) is None
            ok = False
            for _ in range(TRIES):
                ok = self.worker.tick()
                if ok:
                    break
            self.worker.close()  # the connection goes back to the pool
            if ok and event is not None:
                self._check(event)
            if ok and first:
                self.born = (self.worker.uidvalidity, self.worker.last_uid)
            self._known = self._known or ok
            return ok

    def _wanted(self, event: PushEvent) -> bool:
        mb, folder = self.worker.mailbox.name, self.worker.folder
        checkpoint = self.store.get_checkpoint(mb, folder)
        self._known = True
        if checkpoint is None:
            # Not swept yet: the event's message is the first one this folder answers.
            self.store.set_checkpoint(mb, folder, event.uidvalidity, event.uid - 1)
            self.log.info("checkpoint.created", uidvalidity=event.uidvalidity,
                          uidnext=event.uid, note="from a push event")
            return True
        if checkpoint.uidvalidity != event.uidvalidity:
            self.log.warning("push.uidvalidity_mismatch", uid=event.uid,
                             event_uidvalidity=event.uidvalidity,
                             uidvalidity=checkpoint.uidvalidity,
                             note="event ignored; the sweep checks the folder")
            return False
        if checkpoint.last_uid >= event.uid:
            if self.born == (checkpoint.uidvalidity, checkpoint.last_uid):
                # nothing decided since the first checkpoint: from the event's UID on, no
                # message is backlog (UIDs grow with arrival)
                self.store.set_checkpoint(mb, folder, event.uidvalidity, event.uid - 1)
                self.log.info("push.checkpoint_lowered", uid=event.uid,
                              checkpoint=checkpoint.last_uid, note="the start-up sweep took this"
                              " message for backlog; its event came while awayd listened")
                self.born = None
                return True
            self.log.info("push.already_processed", uid=event.uid, checkpoint=checkpoint.last_uid)
            return False
        return True

    def _check(self, event: PushEvent) -> None:
        if self.worker.uidvalidity != event.uidvalidity:
            self.log.warning("push.uidvalidity_mismatch", uid=event.uid,
                             event_uidvalidity=event.uidvalidity,
                             uidvalidity=self.worker.uidvalidity, note="event ignored")
        elif self.worker.last_uid < event.uid:
            self.log.warning("push.uid_not_found", uid=event.uid, checkpoint=self.worker.last_uid,
                             note="no such message (yet); the sweep checks the folder again")


class PushDispatcher:
    """Routes events to folders by IMAP user and folder name; runs events and sweeps on
    `workers` threads (a folder's lock keeps one of them at a time in a folder)."""

    def __init__(self, mailboxes: Iterable[Mailbox], *, pool: WatcherPool, workers: int,
                 make_worker: MakeWorker, store: Any, log: Any) -> None:
        self.pool = pool
        self.store = store
        self.log = log
        #: set when push mode stops; a reload keeps it (a fetch in progress goes on)
        self.stop = threading.Event()
        self.folders: dict[tuple[str, str], PushFolder] = {}
        self._retired: dict[tuple[str, str], PushFolder] = {}
        self.users: set[str] = set()
        self.update(mailboxes, make_worker)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push")
        self.sweeping = threading.Lock()
        #: Sweeps take at most sweep_width threads at a time, so an event never queues behind
        #: a sweep's 20,000 folders: it waits for a free thread, not for the sweep to end.
        self.sweep_slots = threading.Semaphore(sweep_width(workers))

    def update(self, mailboxes: Iterable[Mailbox], make_worker: MakeWorker) -> list[PushFolder]:
        """Take the folders of a (reloaded) configuration; return those that want a sweep now:
        new ones, and those whose mailbox name or IMAP settings changed. Every other folder
        keeps its place in the sweep schedule, with a worker for the new configuration."""
        folders: dict[tuple[str, str], PushFolder] = {}
        users: set[str] = set()
        fresh: list[PushFolder] = []
        for mb in mailboxes:
            assert mb.imap is not None
            users.add(mb.imap.username.lower())
            for folder in mb.imap.folders:
                key = (mb.imap.username.lower(), folder)
                worker = make_worker(mb, folder, self._pooled, self.stop)
                # a folder back after a reload without it takes its old lock again while a
                # fetch begun before it was removed may still run
                target = self.folders.get(key) or self._retired.pop(key, None)
                if target is None:
                    target = PushFolder(worker, self.store)
                    fresh.append(target)
                else:
                    if target.retired or (target.mailbox.name, target.mailbox.imap) != (
                            mb.name, mb.imap):
                        fresh.append(target)
                    target.replace(worker)
                folders[key] = target
        gone = {key: f for key, f in self.folders.items() if key not in folders}
        self.folders, self.users = folders, users  # one assignment each: accept() reads them
        for retired in gone.values():
            retired.retire()
        # kept only while a fetch begun before the removal may still run in it
        self._retired = {k: f for k, f in {**self._retired, **gone}.items() if f.busy}
        return fresh

    def _pooled(self, mailbox: Mailbox, folder: str) -> Watcher:
        assert mailbox.imap is not None
        return PooledWatcher(self.pool, mailbox.imap, folder)

    def accept(self, events: list[PushEvent]) -> None:
        """Queue each event (called by the HTTP thread: never blocks on IMAP)."""
        for event in events:
            target = self.folders.get((event.user.lower(), event.folder))
            if target is None:
                if event.user.lower() in self.users:
                    self.log.info("push.folder_ignored", user=event.user, folder=event.folder,
                                  uid=event.uid, note="not a watched folder")
                else:
                    self.log.warning("push.unknown_user", user=event.user, folder=event.folder,
                                     uid=event.uid, note="no push-mode mailbox logs in as this user")
                continue
            self.executor.submit(self._run, target, event)

    def _run(self, target: PushFolder, event: PushEvent | None) -> bool:
        try:
            return target.wake(event)
        except Exception as err:  # deliberate: a worker thread must never die of one folder
            self.log.error("push.failed", folder=target.worker.name, error=repr(err))
            return False

    def sweep(self, only: list[PushFolder] | None = None) -> int:
        """Wake every folder, or `only` these, sweep_width at a time; return how many failed.
        A sweep of every folder is skipped while the previous one runs."""
        if only is None and not self.sweeping.acquire(blocking=False):
            return 0  # the previous sweep still runs
        try:
            targets = list(self.folders.values()) if only is None else only
            futures = []
            for target in targets:
                self.sweep_slots.acquire()
                if self.stop.is_set():
                    self.sweep_slots.release()
                    break
                try:
                    future = self.executor.submit(self._run, target, None)
                except RuntimeError:  # push mode stopped meanwhile
                    self.sweep_slots.release()
                    break
                future.add_done_callback(lambda _f: self.sweep_slots.release())
                futures.append(future)
            wait(futures)
            failed = sum(1 for f in futures if not f.cancelled() and not f.result())
            self.pool.prune()
            self.log.info("push.swept", folders=len(futures), failed=failed, pooled=len(self.pool),
                          scope="all" if only is None else "changed")
            return failed
        finally:
            if only is None:
                self.sweeping.release()

    def close(self) -> None:
        self.stop.set()
        self.executor.shutdown(wait=True, cancel_futures=True)
        for folder in self.folders.values():
            folder.worker.close()
        self.pool.close()
