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

    def wake(self, event: PushEvent | None = None) -> bool:
        """Fetch and process everything new (after the checkpoint); False when IMAP failed."""
        with self.lock:
            if event is not None and not self._wanted(event):
                return True
            ok = False
            for _ in range(TRIES):
                ok = self.worker.tick()
                if ok:
                    break
            self.worker.close()  # the connection goes back to the pool
            if ok and event is not None:
                self._check(event)
            return ok

    def _wanted(self, event: PushEvent) -> bool:
        mb, folder = self.worker.mailbox.name, self.worker.folder
        checkpoint = self.store.get_checkpoint(mb, folder)
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
                 make_worker: Callable[[Mailbox, str, Callable[[Mailbox, str], Watcher]],
                                       FolderWorker],
                 store: Any, log: Any) -> None:
        self.pool = pool
        self.log = log
        self.folders: dict[tuple[str, str], PushFolder] = {}
        self.users: set[str] = set()
        for mb in mailboxes:
            assert mb.imap is not None
            self.users.add(mb.imap.username.lower())
            for folder in mb.imap.folders:
                worker = make_worker(mb, folder, self._pooled)
                self.folders[(mb.imap.username.lower(), folder)] = PushFolder(worker, store)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push")
        self.sweeping = threading.Lock()

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

    def sweep(self) -> int:
        """Wake every folder (after the events queued before it); return how many failed."""
        if not self.sweeping.acquire(blocking=False):
            return 0  # the previous sweep still runs
        try:
            futures = [self.executor.submit(self._run, f, None) for f in self.folders.values()]
            wait(futures)
            failed = sum(1 for f in futures if not f.cancelled() and not f.result())
            self.pool.prune()
            self.log.info("push.swept", folders=len(futures), failed=failed, pooled=len(self.pool))
            return failed
        finally:
            self.sweeping.release()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        for folder in self.folders.values():
            folder.worker.close()
        self.pool.close()
