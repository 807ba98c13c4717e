"""The daemon's scheduler and its housekeeping jobs: outbox retries, WAL checkpoint, pruning,
the systemd watchdog."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from awayd.config.model import Config
from awayd.errors import AwaydError
from awayd.obs.metrics import Metrics
from awayd.obs.notify import Notifier
from awayd.outbox import Outbox
from awayd.pipeline import Clock
from awayd.worker import FolderWorker

POLL_THREADS = 32  # polled folders share this many threads; a slow server holds only one
OUTBOX_EVERY_S = 5.0
WAL_CHECKPOINT_EVERY_S = 60.0


class Daemon(Protocol):
    """What the jobs read from the running service (its config and folders change on reload)."""

    config: Config
    clock: Clock
    log: Any
    store: Any
    outbox: Outbox
    metrics: Metrics
    notifier: Notifier
    workers: list[FolderWorker]


def longest_interval(config: Config) -> timedelta:
    intervals = [r.interval for m in config.mailboxes for r in m.rules] or [timedelta(days=7)]
    return max(*intervals, timedelta(days=1))


def make_scheduler(daemon: Daemon) -> BackgroundScheduler:
    """A scheduler (not started) with the housekeeping jobs; polled folders get the "poll"
    executor's threads."""
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job run is noise
    scheduler = BackgroundScheduler(
        timezone="UTC",
        executors={"default": ThreadPoolExecutor(4),
                   "poll": ThreadPoolExecutor(POLL_THREADS)},  # threads start on demand
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
    # never later than the first retry is due, but not busier than twice a second
    every = min(OUTBOX_EVERY_S, max(0.5, daemon.config.state.retry_base.total_seconds()))
    scheduler.add_job(outbox_job, "interval", args=[daemon], seconds=every, id="outbox")
    scheduler.add_job(wal_job, "interval", args=[daemon], seconds=WAL_CHECKPOINT_EVERY_S, id="wal")
    scheduler.add_job(prune_job, "interval", args=[daemon], hours=1, id="prune",
                      next_run_time=daemon.clock() + timedelta(seconds=30))
    interval = daemon.notifier.watchdog_interval()
    scheduler.add_job(watchdog_job, "interval", args=[daemon],
                      seconds=max(1.0, (interval or 60.0) / 2), id="watchdog")
    return scheduler


def outbox_job(daemon: Daemon) -> None:
    depth = daemon.outbox.retry()
    if depth >= 0:
        daemon.metrics.set_outbox_depth(depth)


def wal_job(daemon: Daemon) -> None:
    try:
        daemon.store.checkpoint_wal()
    except AwaydError as err:
        daemon.log.warning("store.checkpoint_failed", error=str(err))


def prune_job(daemon: Daemon) -> None:
    try:
        daemon.store.prune(daemon.clock(), keep_history=longest_interval(daemon.config),
                           keep_decisions=daemon.config.state.keep_decisions)
    except AwaydError as err:
        daemon.log.error("store.prune_failed", error=str(err))


def watchdog_job(daemon: Daemon) -> None:
    healthy = sum(1 for w in daemon.workers if w.watcher is not None)
    daemon.notifier.status(f"watching {healthy}/{len(daemon.workers)} folders")
    daemon.notifier.watchdog()
