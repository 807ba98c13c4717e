"""Start, reload and stop push mode inside the daemon: endpoint, dispatcher, pool and sweep job."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

import structlog

from awayd.adapters.imap import FolderWatcher
from awayd.adapters.imap_pool import WatcherPool
from awayd.adapters.secrets import resolve_secret
from awayd.config.model import Config, ImapSettings, Mailbox, PushSettings
from awayd.pipeline import Clock
from awayd.push.dispatch import MakeWorker, PushDispatcher
from awayd.push.server import PushServer

SWEEP_JOB = "push-sweep"


def _watcher(settings: ImapSettings, folder: str) -> FolderWatcher:
    return FolderWatcher(settings, folder, secret_resolver=resolve_secret,
                         log=structlog.get_logger("awayd.imap").bind(user=settings.username))


def push_mailboxes(config: Config) -> list[Mailbox]:
    return [mb for mb in config.mailboxes if mb.imap is not None and mb.imap.push]


@dataclass
class PushMode:
    dispatcher: PushDispatcher
    server: PushServer
    settings: PushSettings
    log: Any

    def stop(self, scheduler: Any) -> None:
        with contextlib.suppress(LookupError):
            scheduler.remove_job(SWEEP_JOB)
        self.server.stop()
        self.dispatcher.close()

    def keeps(self, settings: PushSettings) -> bool:
        """True when a reload to `settings` can keep this endpoint, its threads and pool."""
        return (settings.listen, settings.workers, settings.pool) == (
            self.settings.listen, self.settings.workers, self.settings.pool)

    def update(self, config: Config, scheduler: Any, make_worker: MakeWorker) -> None:
        """Take a reloaded configuration without stopping the endpoint: events keep coming in,
        and only the folders that are new or whose IMAP settings changed are swept now; the
        others keep their place in the sweep schedule.

        Raises:
            ConfigError: the token cannot be read.
        """
        push = config.push
        assert push is not None
        assert self.keeps(push)
        self.server.set_token(resolve_secret(push.token))
        before = len(self.dispatcher.folders)
        fresh = self.dispatcher.update(push_mailboxes(config), make_worker)
        if push.sweep_interval != self.settings.sweep_interval:
            scheduler.reschedule_job(SWEEP_JOB, trigger="interval",
                                     seconds=push.sweep_interval.total_seconds())
        self.settings = push
        self.log.info("push.reloaded", folders=len(self.dispatcher.folders), before=before,
                      sweep_now=len(fresh), sweep_s=push.sweep_interval.total_seconds())
        if fresh:
            threading.Thread(target=self.dispatcher.sweep, kwargs={"only": fresh},
                             name="push-sweep-changed", daemon=True).start()


def start_push(config: Config, scheduler: Any, *, make_worker: MakeWorker, store: Any,
               clock: Clock, log: Any) -> PushMode | None:
    """Listen for events and schedule the sweep (first run now: it creates the checkpoints).

    Raises:
        ConfigError: the token cannot be read or the address cannot be bound.
    """
    push = config.push
    mailboxes = push_mailboxes(config)
    if push is None or not mailboxes:
        return None
    token = resolve_secret(push.token)
    dispatcher = PushDispatcher(mailboxes, pool=WatcherPool(push.pool, _watcher),
                                workers=push.workers, make_worker=make_worker, store=store, log=log)
    try:
        server = PushServer(push.listen, token, dispatcher.accept, log)
    except BaseException:
        dispatcher.close()
        raise
    server.start()
    scheduler.add_job(dispatcher.sweep, "interval", id=SWEEP_JOB,
                      seconds=push.sweep_interval.total_seconds(), next_run_time=clock())
    log.info("push.listening", listen=push.listen, mailboxes=len(mailboxes),
             folders=len(dispatcher.folders), sweep_s=push.sweep_interval.total_seconds())
    return PushMode(dispatcher, server, push, log)


def reload_push(current: PushMode | None, config: Config, scheduler: Any, *,
                make_worker: MakeWorker, store: Any, clock: Clock, log: Any) -> PushMode | None:
    """Push mode for a reloaded `config`: updated in place when the endpoint, worker threads
    and pool stay as they are; otherwise stopped and started again, which sweeps every folder
    (events sent while the endpoint was down are answered that way)."""
    push = config.push
    if current is not None:
        if push is not None and push_mailboxes(config) and current.keeps(push):
            current.update(config, scheduler, make_worker)
            return current
        current.stop(scheduler)
    return start_push(config, scheduler, make_worker=make_worker, store=store, clock=clock,
                      log=log)

