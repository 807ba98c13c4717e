"""The daemon's lifecycle: store, workers, scheduler, signals, reload and systemd notification."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from awayd.adapters.imap import FolderWatcher, append_message
from awayd.adapters.secrets import resolve_secret
from awayd.adapters.smtp import SmtpSender
from awayd.adapters.state_lock import StateLock
from awayd.adapters.store_absence import AbsenceCache
from awayd.adapters.store_api import open_store
from awayd.config.load import load_config
from awayd.config.model import Config, Mailbox
from awayd.core.backoff import Backoff
from awayd.errors import AwaydError, ConfigError, SourceError
from awayd.housekeeping import make_scheduler
from awayd.leasing import LeaseKeeper, host_id
from awayd.obs.metrics import Metrics, start_http
from awayd.obs.notify import Notifier
from awayd.outbox import Outbox
from awayd.pipeline import Clock, Pipeline
from awayd.push.mode import PushMode, reload_push
from awayd.worker import FolderWorker, Watcher

STOP_GRACE_S = 8.0
RETRY_CAP_S = 3600.0
#: `run --once` waits this long past the longest SMTP timeout for the relays to settle.
ONCE_SETTLE_S = 30.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def make_watcher(mailbox: Mailbox, folder: str) -> FolderWatcher:
    assert mailbox.imap is not None
    return FolderWatcher(mailbox.imap, folder, secret_resolver=resolve_secret,
                         log=structlog.get_logger("awayd.imap").bind(mailbox=mailbox.name))


#: A mail host's 20,000 names would make one log line of half a megabyte.
LOGGED_NAMES = 50


def mailbox_names(config: Config) -> list[str]:
    """The mailbox names for a log line: all of them, or the first LOGGED_NAMES and a count."""
    names = [m.name for m in config.mailboxes]
    if len(names) <= LOGGED_NAMES:
        return names
    return [*names[:LOGGED_NAMES], f"... {len(names) - LOGGED_NAMES} more"]


class Service:
    """Owns every resource of a running daemon."""

    def __init__(self, config_path: Path, *, clock: Clock = utc_now,
                 environ: dict[str, str] | None = None, init_state: bool = False) -> None:
        self.config_path = config_path
        self.clock = clock
        self.log = structlog.get_logger("awayd")
        self.notifier = Notifier(environ)
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.config: Config = load_config(config_path)
        # One daemon per state file: a second one would answer the same mail again. On
        # PostgreSQL several hosts share the state; the reply claims keep answers single.
        self.state_lock = (None if self.config.state.url
                           else StateLock.acquire(self.config.state.path))
        try:
            self.store = open_store(self.config.state, init_state=init_state)
        except BaseException:
            if self.state_lock is not None:
                self.state_lock.release()
            raise
        self.absences = AbsenceCache(self.store.db, on_error=lambda error: self.log.error(
            "absence.unreadable", error=error))
        self._workers_lock = threading.RLock()
        self._mailbox_stops: dict[str, threading.Event] = {}
        self._once = False  # run --once: leases are claimed once, no worker threads
        self.leases = self._lease_keeper() if self.config.state.url else None
        self.metrics = Metrics(clock=lambda: self.clock().timestamp())
        self.outbox = Outbox(store=self.store, clock=self.clock, log=self.log,
                             make_sender=lambda settings: SmtpSender(settings, resolve_secret),
                             events=self.metrics, save_copy=self._save_copy)
        self.pipeline = self._pipeline(self.config)
        self.workers: list[FolderWorker] = []
        self.threads: list[tuple[FolderWorker, threading.Thread]] = []
        self.poll_jobs: list[tuple[str, FolderWorker]] = []
        self.worker_stop = threading.Event()
        self.http: Any = None
        self.push: PushMode | None = None

    def _pipeline(self, config: Config) -> Pipeline:
        base = config.state.retry_base.total_seconds()
        self.outbox.max_delay = config.state.max_delay
        self.outbox.backoff = Backoff(base=base, cap=max(base, RETRY_CAP_S))
        self.outbox.configure(config.mailboxes)
        return Pipeline(store=self.store, clock=self.clock, outbox=self.outbox, log=self.log,
                        events=self.metrics, absences=self.absences.get)

    def _lease_keeper(self) -> LeaseKeeper:
        """Several hosts on one PostgreSQL: leases decide which mailboxes this one works on."""
        from awayd.adapters.leases_pg import Fence, LeaseTable  # noqa: PLC0415 (psycopg)
        from awayd.adapters.store_pg_schema import PgDatabase  # noqa: PLC0415

        assert self.config.state.url is not None
        period = self.config.state.lease.total_seconds()
        fence = Fence(host_id(), margin=period / 3, on_refused=lambda mailbox, action: self.log.warning(
            "lease.fenced", mailbox=mailbox, action=action, note="not leased to this host"))
        self.store.fence = fence
        # its own connection: a renewal never queues behind the decisions being recorded
        table = LeaseTable(PgDatabase(self.config.state.url, readonly=False), fence.host, period)
        self.log.info("lease.host", host=fence.host, lease_s=period)
        return LeaseKeeper(table, fence, log=self.log, gain=self._gain, lose=self._lose)

    def _save_copy(self, mailbox: Mailbox, data: bytes) -> None:
        assert mailbox.save_copy is not None
        assert mailbox.imap is not None
        # a connection of its own: the folder's watcher belongs to its worker thread
        append_message(mailbox.imap, mailbox.save_copy, data, secret_resolver=resolve_secret,
                       log=structlog.get_logger("awayd.imap").bind(mailbox=mailbox.name))

    def _workers(self, config: Config, only: Iterable[str] | None = None, *,
                 push: bool = True) -> list[FolderWorker]:
        """Workers of the mailboxes' folders; `push=False` leaves out push-mode folders (push
        mode has workers of its own: 20,000 built and dropped would hold up its first events)."""
        workers = []
        names = None if only is None else set(only)
        for mb in config.mailboxes:
            if mb.imap is None or (names is not None and mb.name not in names):
                continue
            every = mb.imap.poll_interval
            if mb.imap.push and config.push is not None:
                every = config.push.sweep_interval  # checked by each sweep (and each event)
            self.metrics.register_mailbox(mb.name, every.total_seconds())
            if mb.imap.push and not push:
                continue
            for folder in mb.imap.folders:
                workers.append(FolderWorker(
                    mb, folder, pipeline=self.pipeline, store=self.store, make_watcher=make_watcher,
                    clock=self.clock, log=self.log,
                    stop=self._mailbox_stops.get(mb.name, self.worker_stop),
                    on_checked=self.metrics.checked, on_reconnect=self.metrics.reconnect,
                    on_idle_mode=self.metrics.folder_idle))
        return workers

    # --- one-shot -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Process what is new in every folder, send, exit.

        Raises:
            SourceError: an IMAP server was unreachable (exit 69).
            AwaydError: replies stayed pending (relay down, login refused, certificate not
                trusted, store full): transient, exit 75, so cron or systemd tries again.
        """
        only = None
        if self.leases is not None:
            self._once = True
            self.leases.configure([mb.name for mb in self.config.mailboxes if mb.imap is not None])
            only = list(self.leases.fence.held())
        self.outbox.retry(everything=True)
        workers = self._workers(self.config, only=only)
        failed = []
        threads = [threading.Thread(target=lambda w=w: failed.append(w) if not w.tick() else None,
                                    name=f"once-{w.name}") for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for w in workers:
            w.close()
        self.outbox.retry()
        self._settle()
        pending = self.outbox.retry()
        self.close()
        if failed:
            names = ", ".join(w.name for w in failed)
            raise SourceError(f"could not check {names}; see the log", transient=True)
        if pending != 0:
            what = "the state could not be written" if pending < 0 else f"{pending} replies are still pending"
            error = AwaydError(f"{what} (relay down, login refused, certificate not trusted or"
                               " disk full?); see the log; they are sent on the next run")
            error.transient = True
            raise error
        return 0

    def _settle(self) -> None:
        """Wait until every relay has sent what it can now (or waits for a probe or hold)."""
        timeouts = [mb.smtp.timeout for mb in self.config.mailboxes if mb.smtp is not None]
        deadline = time.monotonic() + 2 * max(timeouts, default=0.0) + ONCE_SETTLE_S
        while not self.outbox.settled() and time.monotonic() < deadline:
            time.sleep(0.05)

    # --- daemon ---------------------------------------------------------------------------

    def _start_workers(self, scheduler: BackgroundScheduler) -> None:
        """IDLE folders get a thread each; polled folders (`idle: false`) a scheduler job;
        push-mode folders have no connection of their own: events and the sweep wake them.

        With leases (several hosts), only the mailboxes this host holds get workers, now and
        whenever the lease keeper gains one."""
        with self._workers_lock:
            self.worker_stop = threading.Event()
            self.workers = []
            self.threads = []
            self.poll_jobs = []
            self._mailbox_stops = {}
            # on a reload, push mode keeps its endpoint and sweep schedule when it can
            self.push = reload_push(self.push, self.config, scheduler, make_worker=self._push_worker,
                                    store=self.store, clock=self.clock, log=self.log)
            if self.leases is None:
                self._start_folders(scheduler, self._workers(self.config, push=False))
            else:
                self._gain(sorted(self.leases.fence.held()))
        if self.leases is not None:
            names = [mb.name for mb in self.config.mailboxes if mb.imap is not None]
            if self.leases.running:
                self.leases.configure(names)
            else:
                self.leases.start(names)

    def _gain(self, names: list[str]) -> None:
        """Start the workers of mailboxes whose leases this host just gained."""
        if self._once:
            return
        with self._workers_lock:
            for name in names:
                self._mailbox_stops[name] = threading.Event()
            self._start_folders(self.scheduler, self._workers(self.config, only=names))
        self.outbox.retry(everything=True)  # their pending replies are ours to send now

    def _lose(self, names: list[str]) -> None:
        """Stop the workers of mailboxes whose leases this host lost or gives up."""
        with self._workers_lock:
            for name in names:
                stop = self._mailbox_stops.pop(name, None)
                if stop is not None:
                    stop.set()
            going = [w for w in self.workers if w.mailbox.name in names]
            self.workers = [w for w in self.workers if w.mailbox.name not in names]
            for job_id, worker in [j for j in self.poll_jobs if j[1] in going]:
                with contextlib.suppress(LookupError):
                    self.scheduler.remove_job(job_id)
                worker.shutdown()
            self.poll_jobs = [j for j in self.poll_jobs if j[1] not in going]
            for worker, t in [x for x in self.threads if x[0] in going]:
                if not worker.idling:
                    t.join(timeout=STOP_GRACE_S)
            self.threads = [x for x in self.threads if x[0] not in going]

    def _start_folders(self, scheduler: BackgroundScheduler, workers: list[FolderWorker]) -> None:
        # push-mode folders have no connection of their own: events and the sweep wake them
        workers = [w for w in workers if w.mailbox.imap is not None and not w.mailbox.imap.push]
        self.workers.extend(workers)
        for w in workers:
            assert w.mailbox.imap is not None
            if w.mailbox.imap.idle:
                t = threading.Thread(target=w.run_idle, name=f"watch-{w.name}", daemon=True)
                t.start()
                self.threads.append((w, t))
                continue
            job = scheduler.add_job(w.poll, "interval", executor="poll", id=f"poll:{w.name}",
                                    seconds=w.mailbox.imap.poll_interval.total_seconds(),
                                    next_run_time=self.clock())
            self.poll_jobs.append((job.id, w))

    def _push_worker(self, mailbox: Mailbox, folder: str,
                     make_watcher: Callable[[Mailbox, str], Watcher],
                     stop: threading.Event) -> FolderWorker:
        return FolderWorker(
            mailbox, folder, pipeline=self.pipeline, store=self.store, make_watcher=make_watcher,
            clock=self.clock, log=self.log, stop=stop,
            on_checked=self.metrics.checked, on_reconnect=self.metrics.reconnect)

    def _stop_workers(self, scheduler: BackgroundScheduler, *, keep_push: bool = False) -> None:
        with self._workers_lock:
            self.worker_stop.set()
            if self.push is not None and not keep_push:
                self.push.stop(scheduler)
                self.push = None
            for stop in self._mailbox_stops.values():
                stop.set()
            for job_id, worker in self.poll_jobs:
                with contextlib.suppress(LookupError):
                    scheduler.remove_job(job_id)
                worker.shutdown()
            self.poll_jobs = []
            for worker, t in self.threads:
                # A folder waiting in IDLE has nothing in flight: it sees the stop at its next wake
                # and logs out then (or the process exits first). Waiting for every wake would make
                # a stop or reload take up to the IDLE wake interval.
                if not worker.idling:
                    t.join(timeout=STOP_GRACE_S)
            self.threads = []

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload_event.set()
        else:
            self.stop_event.set()
        self.wake.set()

    def reload(self) -> None:
        self.notifier.reloading()
        try:
            config = load_config(self.config_path, previous=self.config)
        except ConfigError as err:
            self.log.error("config.reload_rejected", problems=list(err.problems),
                           note="the previous configuration keeps running")
            self.notifier.ready()
            return
        for note in config.notes:  # e.g. a failing mailbox_command: its old list is kept
            self.log.warning("config.reload_note", note=note)
        if (config.state.path, config.state.url) != (self.config.state.path, self.config.state.url):
            self.log.warning("config.state_path_ignored", note="a new state path needs a restart")
        self._stop_workers(self.scheduler, keep_push=True)
        self.config = config
        self.pipeline = self._pipeline(config)
        self._start_workers(self.scheduler)
        self.log.info("config.reloaded", mailboxes=mailbox_names(config))
        self.notifier.ready()

    def run(self, install_signals: bool = True) -> int:
        self.wake = threading.Event()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, self._on_signal)
        if self.config.metrics.listen:
            self.http = start_http(self.config.metrics.listen, self.metrics)
        self.outbox.retry(everything=True)  # pending replies of a previous run go first
        self.scheduler = scheduler = make_scheduler(self)
        scheduler.start()
        self._start_workers(scheduler)
        for mb in self.config.mailboxes:
            if mb.smtp is not None and mb.smtp.tls.security != "none" and not mb.smtp.tls.verify:
                self.log.warning("smtp.tls_verify_disabled", mailbox=mb.name, host=mb.smtp.host,
                                 note="the SMTP server's certificate is not checked")
        self.notifier.ready()
        self.log.info("service.started", mailboxes=mailbox_names(self.config),
                      folders=len(self.workers))
        while not self.stop_event.is_set():
            self.wake.wait(1.0)
            self.wake.clear()
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
        self.notifier.stopping()
        self.log.info("service.stopping")
        if self.leases is not None:
            self.leases.stop()
        self._stop_workers(scheduler)
        scheduler.shutdown(wait=True)
        self.close()
        self.log.info("service.stopped")
        return 0

    def close(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
        self.outbox.close(STOP_GRACE_S)
        if self.leases is not None:
            self.leases.leave()  # after the sends in flight: the next owner may start at once
            self.leases.table.db.close()
        self.store.close()
        if self.state_lock is not None:
            self.state_lock.release()


def run_service(config_path: Path, *, once: bool, init_state: bool = False) -> int:
    service = Service(config_path, init_state=init_state)
    return service.run_once() if once else service.run()

