"""Start and stop push mode inside the daemon: endpoint, dispatcher, pool and sweep job."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from awayd.adapters.imap import FolderWatcher
from awayd.adapters.imap_pool import WatcherPool
from awayd.adapters.secrets import resolve_secret
from awayd.config.model import Config, ImapSettings, Mailbox
from awayd.pipeline import Clock
from awayd.push.dispatch import PushDispatcher
from awayd.push.server import PushServer
from awayd.worker import FolderWorker, Watcher

SWEEP_JOB = "push-sweep"
MakeWorker = Callable[[Mailbox, str, Callable[[Mailbox, str], Watcher]], FolderWorker]


def _watcher(settings: ImapSettings, folder: str) -> FolderWatcher:
    return FolderWatcher(settings, folder, secret_resolver=resolve_secret,
                         log=structlog.get_logger("awayd.imap").bind(user=settings.username))


@dataclass
class PushMode:
    dispatcher: PushDispatcher
    server: PushServer

    def stop(self, scheduler: Any) -> None:
        with contextlib.suppress(LookupError):
            scheduler.remove_job(SWEEP_JOB)
        self.server.stop()
        self.dispatcher.close()


def start_push(config: Config, scheduler: Any, *, make_worker: MakeWorker, store: Any,
               clock: Clock, log: Any) -> PushMode | None:
    """Listen for events and schedule the sweep (first run now: it creates the checkpoints).

    Raises:
        ConfigError: the token cannot be read or the address cannot be bound.
    """
    push = config.push
    mailboxes = [mb for mb in config.mailboxes if mb.imap is not None and mb.imap.push]
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
    return PushMode(dispatcher, server)
