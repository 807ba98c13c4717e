"""One watched folder: checkpoint handling, fetch in batches, IDLE or poll, reconnect with backoff."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from awayd.adapters.store_api import AlreadyRecorded, Fenced
from awayd.config.model import Mailbox
from awayd.core.backoff import Backoff
from awayd.errors import AwaydError, SourceError, StateError
from awayd.pipeline import Clock, Incoming, Pipeline

IDLE_RENEW_S = 25 * 60  # RFC 2177: re-issue IDLE before the server's 30 minute timeout
#: A live IDLE wakes every poll_interval, within these bounds, to record a check (metrics
#: staleness) and see a stop request. Each wake costs 0.1-0.3 ms of CPU: 1,000 folders waking
#: every second kept 12-19 % of a core busy while no mail came (bench/RESULTS.md).
IDLE_WAKE_MIN_S = 1.0
IDLE_WAKE_MAX_S = 30.0
BATCH = 500
#: While the store cannot commit, the folder tries again this soon (doubling up to the cap):
#: freeing disk space brings decisions back within seconds, not after an IMAP backoff.
STORE_RETRY_S = 0.5
STORE_RETRY_CAP_S = 5.0
#: While the store refuses the mailbox because this host lost its lease, the folder waits this
#: long (doubling up to the cap) before trying again: the lease keeper stops it within a
#: lease round when the lease went to another host; a lease still ours comes back.
FENCED_RETRY_S = 2.0
FENCED_RETRY_CAP_S = 30.0


class Watcher(Protocol):
    def connect(self) -> tuple[int, int]: ...
    def fetch_new(self, after_uid: int, limit: int = BATCH, with_text: bool = False) -> list[Any]: ...
    def wait(self, timeout: float) -> bool: ...
    def close(self) -> None: ...

    @property
    def uses_idle(self) -> bool: ...


class FolderWorker:
    """Watches one folder of one mailbox; never lets an error escape its thread."""

    def __init__(self, mailbox: Mailbox, folder: str, *, pipeline: Pipeline, store: Any,
                 make_watcher: Callable[[Mailbox, str], Watcher], clock: Clock, log: Any,
                 stop: threading.Event, backoff: Backoff | None = None,
                 on_checked: Callable[[str, float], None] | None = None,
                 on_reconnect: Callable[[str], None] | None = None,
                 on_idle_mode: Callable[[str, str, bool], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.mailbox = mailbox
        self.folder = folder
        self.pipeline = pipeline
        self.store = store
        self.make_watcher = make_watcher
        self.clock = clock
        self.log = log.bind(mailbox=mailbox.name, folder=folder)
        self.stop = stop
        self.backoff = backoff or Backoff()
        self.on_checked = on_checked
        self.on_reconnect = on_reconnect
        self.on_idle_mode = on_idle_mode
        self._told_no_idle = False
        self.watcher: Watcher | None = None
        self.failures = 0
        self.store_failures = 0
        self.fenced = 0  # refusals in a row: this host does not hold the mailbox's lease
        self._made: Watcher | None = None
        self.uidvalidity = 0
        self.last_uid = 0
        # always: the guards know a bounce or an auto-reply by its first words, not only by headers
        self.with_text = True
        self.monotonic = monotonic
        self._not_before = 0.0
        self._lock = threading.Lock()
        #: True while the thread waits in IDLE: nothing in flight, a stop need not wait for it
        self.idling = False

    @property
    def name(self) -> str:
        return f"{self.mailbox.name}/{self.folder}"

    def _make_watcher(self) -> Watcher:
        # remembered so that a store error after connecting (setting the first checkpoint on
        # a full disk) can log it out instead of leaving a connection behind on every retry
        self._made = self.make_watcher(self.mailbox, self.folder)
        return self._made

    def _connect(self) -> Watcher:
        watcher = self._make_watcher()
        uidvalidity, uidnext = watcher.connect()
        checkpoint = self.store.get_checkpoint(self.mailbox.name, self.folder)
        if checkpoint is None:
            self.log.info("checkpoint.created", uidvalidity=uidvalidity, uidnext=uidnext,
                          note="first start: the backlog is never answered")
            self.store.set_checkpoint(self.mailbox.name, self.folder, uidvalidity, uidnext - 1)
            self.last_uid = uidnext - 1
        elif checkpoint.uidvalidity != uidvalidity:
            self.log.warning("checkpoint.uidvalidity_changed", old=checkpoint.uidvalidity,
                             new=uidvalidity, note="restarting at UIDNEXT")
            self.store.set_checkpoint(self.mailbox.name, self.folder, uidvalidity, uidnext - 1)
            self.last_uid = uidnext - 1
        else:
            self.last_uid = checkpoint.last_uid
        self.uidvalidity = uidvalidity
        self._note_idle_mode(watcher)
        if self.failures:
            self.log.info("imap.reconnected", after_failures=self.failures)
        self.failures = 0
        return watcher

    def _note_idle_mode(self, watcher: Watcher) -> None:
        assert self.mailbox.imap is not None
        if self.on_idle_mode is not None:
            self.on_idle_mode(self.mailbox.name, self.folder, watcher.uses_idle)
        # push mode never IDLEs (events and the sweep wake the folder): nothing to warn about
        if (self.mailbox.imap.idle and not self.mailbox.imap.push and not watcher.uses_idle
                and not self._told_no_idle):
            self._told_no_idle = True  # once: every reconnect would say the same
            self.log.warning("imap.idle_unsupported", poll_interval_s=round(
                self.mailbox.imap.poll_interval.total_seconds(), 3),
                note="the server does not offer IDLE: polling with NOOP every poll_interval")

    def drain(self) -> int:
        """Fetch and process everything after the checkpoint; returns the count."""
        assert self.watcher is not None
        done = 0
        while not self.stop.is_set():
            batch = self.watcher.fetch_new(self.last_uid, limit=BATCH, with_text=self.with_text)
            for msg in batch:
                if self.stop.is_set():
                    break
                if msg.uid <= self.last_uid:
                    continue  # recorded meanwhile by another host (see _recorded_before)
                try:
                    self.pipeline.process(Incoming(self.mailbox, self.folder, self.uidvalidity,
                                                   msg.uid, msg.internaldate, msg.raw))
                except AlreadyRecorded as err:
                    self._recorded_before(msg.uid, err)
                self.last_uid = max(self.last_uid, msg.uid)
                done += 1
            if len(batch) < BATCH:
                break
        if self.on_checked is not None:
            self.on_checked(self.mailbox.name, self.clock().timestamp())
        return done

    def _recorded_before(self, uid: int, err: AlreadyRecorded) -> None:
        """The message is done (another host, or this folder's older view of the checkpoint):
        carry on from the stored checkpoint instead of deciding it again and again."""
        checkpoint = self.store.get_checkpoint(self.mailbox.name, self.folder)
        if checkpoint is not None and checkpoint.uidvalidity == self.uidvalidity:
            self.last_uid = max(self.last_uid, checkpoint.last_uid)
        self.log.warning("message.already_recorded", uid=uid, last_uid=max(self.last_uid, uid),
                         error=str(err), note="recorded before: moving on from the stored checkpoint")

    def tick(self, *, noop: bool = True) -> bool:
        """One cycle: (re)connect if needed, NOOP for news, drain. False after a failure.

        `noop=False` after IDLE announced new mail: the server has already told us.
        """
        with self._lock:
            try:
                if self.watcher is None:
                    self.watcher = self._connect()
                    self.drain()
                elif noop:
                    self.watcher.wait(0)  # let the server report new messages
                    self.drain()
                else:
                    self.drain()
                self.store_failures = 0
                self.fenced = 0
                return True
            except Fenced as err:
                # Logged by the store's fence (lease.fenced): not a store failure. Nothing
                # more is decided until the lease keeper stops this folder or the lease holds.
                self.fenced += 1
                self.log.debug("folder.fenced_wait", error=str(err))
                return False
            except StateError as err:
                # The store's fault, logged by the pipeline (store.write_failed): the IMAP
                # connection is fine and stays; the message is decided again shortly.
                self.store_failures += 1
                self.log.debug("folder.store_wait", error=str(err))
                made, self._made = self._made, None
                if self.watcher is None and made is not None:
                    with contextlib.suppress(AwaydError):
                        made.close()
                return False
            except AwaydError as err:
                self._failed(err)
                return False
            except Exception as err:  # deliberate: a bug must not end the folder's thread
                self.log.error("folder.crashed", error=repr(err), note="reconnecting")
                self._failed(SourceError(repr(err)))
                return False

    def poll(self) -> None:
        """Scheduler job of a polled folder (`idle: false`): one tick unless backing off."""
        if self.stop.is_set() or self.monotonic() < self._not_before:
            return
        if not self.tick():
            if self.fenced or self.store_failures:
                self._not_before = self.monotonic() + self.store_delay()
                return
            delay = self.retry_delay()  # one draw: the jitter differs on every call
            self._not_before = self.monotonic() + delay
            self.log.info("imap.retry_wait", seconds=round(delay, 2))

    def shutdown(self) -> None:
        """Close the connection once any tick in progress has finished."""
        with self._lock:
            self.close()

    def _failed(self, err: AwaydError) -> None:
        self.failures += 1
        # a refused login or a missing folder needs the operator: error, not warning
        event = self.log.warning if err.transient else self.log.error
        event("imap.failed", error=str(err), transient=err.transient, failures=self.failures)
        if self.on_reconnect is not None:
            self.on_reconnect(self.mailbox.name)
        self.close()

    def store_delay(self) -> float:
        """How long to wait before the next try after the store refused or failed."""
        if self.fenced:
            return min(FENCED_RETRY_CAP_S, FENCED_RETRY_S * 2.0 ** min(self.fenced - 1, 8))
        return min(STORE_RETRY_CAP_S, STORE_RETRY_S * 2.0 ** min(self.store_failures - 1, 8))

    def retry_delay(self) -> float:
        delay = self.backoff.delay(self.failures - 1)
        return delay if self.failures else 0.0

    def run_idle(self) -> None:
        """Thread body: IDLE when offered, else NOOP polling every poll_interval."""
        assert self.mailbox.imap is not None
        poll = self.mailbox.imap.poll_interval.total_seconds()
        announced = False
        while not self.stop.is_set():
            if self.failures:
                delay = self.retry_delay()
                self.log.info("imap.retry_wait", seconds=round(delay, 2))
                if self.stop.wait(delay):
                    break
            if not self.tick(noop=not announced):
                announced = False
                if (self.fenced or self.store_failures) and self.stop.wait(self.store_delay()):
                    break
                continue
            announced = False
            watcher = self.watcher
            if watcher is None:
                continue
            try:
                if watcher.uses_idle:
                    self.idling = True
                    try:
                        announced = self._idle(watcher, min(IDLE_WAKE_MAX_S, max(IDLE_WAKE_MIN_S, poll)),
                                               check_every=max(IDLE_WAKE_MIN_S, poll))
                    finally:
                        self.idling = False
                else:
                    self.stop.wait(poll)
            except SourceError as err:
                with self._lock:
                    self._failed(err)
        self.close()

    def _idle(self, watcher: Watcher, wake: float = IDLE_WAKE_MIN_S,
              check_every: float = IDLE_RENEW_S) -> bool:
        """Wait in IDLE; True when the folder should be drained.

        True also after `check_every` seconds of silence: some servers push late or never
        (stock Cyrus announces after about 60 s), so the caller's drain ends the IDLE (DONE),
        searches for new UIDs, and IDLE starts again after a NOOP. Mail is then answered
        within about poll_interval whatever the server pushes.
        """
        # the watcher keeps IDLE running across calls and renews it every IDLE_RENEW_S; a wake
        # every `wake` seconds records the check and sees a stop request
        quiet_since = self.monotonic()
        while not self.stop.is_set():
            if watcher.wait(wake):
                return True
            if self.on_checked is not None:  # a live IDLE is a check: the server would tell us
                self.on_checked(self.mailbox.name, self.clock().timestamp())
            if self.monotonic() - quiet_since >= check_every:
                return True
        return False

    def close(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            with contextlib.suppress(AwaydError):
                watcher.close()
