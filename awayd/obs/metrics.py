"""Prometheus metrics on a private registry, and the health they imply (served by obs.endpoint)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from awayd.obs.endpoint import MetricsServer, parse_listen, serve

__all__ = ["Health", "Metrics", "MetricsServer", "parse_listen", "start_http"]


# The library's own switch (process-wide): counters export no `_created` series, which are
# Unix times of the process start that nothing here alerts on and that double the series count.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: A mailbox is stale when its last check is older than this many poll intervals...
STALE_FACTOR = 3.0
#: ...but never sooner than this, so a 1 s poll interval does not flap on a slow login.
MIN_STALE_S = 10.0


@dataclass(frozen=True)
class Health:
    """The /healthz verdict: healthy when no registered mailbox is stale and no SMTP relay
    refused our credentials."""

    stale: tuple[str, ...]
    auth_refused: tuple[str, ...] = ()  # relays (host:port) that answered 535 to our login

    @property
    def ok(self) -> bool:
        return not self.stale and not self.auth_refused

    def describe(self) -> str:
        lines = []
        if self.stale:
            lines.append("stale: " + ", ".join(self.stale))
        if self.auth_refused:
            lines.append("smtp auth refused: " + ", ".join(self.auth_refused))
        return "".join(line + "\n" for line in lines) or "ok\n"


@dataclass
class _Watch:
    poll_interval_s: float
    registered_at: float
    last_check: float | None = None


class _CheckAgeCollector(Collector):
    """Computes the check ages at scrape time, so the gauge is never a stale snapshot."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families({})

    def collect(self) -> Iterable[Metric]:
        return self._families(self._metrics.last_checks())

    def _families(self, checks: dict[str, tuple[float, float]]) -> list[Metric]:
        last = GaugeMetricFamily(
            "awayd_last_check_timestamp_seconds",
            "Unix time the mailbox was last checked (poll, IDLE wake-up or NOOP); the time it "
            "was registered while never checked.",
            labels=["mailbox"],
        )
        interval = GaugeMetricFamily(
            "awayd_poll_interval_seconds",
            "The mailbox's configured poll interval, for staleness alerts.",
            labels=["mailbox"],
        )
        for mailbox, (at, poll_s) in sorted(checks.items()):
            last.add_metric([mailbox], at)
            interval.add_metric([mailbox], poll_s)
        return [last, interval]


class Metrics:
    """The daemon's counters and gauges, held in a registry of their own (no global state).

    All methods are safe to call from any thread. Timestamps (`checked(at=...)`) and the
    injected `clock` must be on the same scale: Unix seconds from time.time by default.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        stale_factor: float = STALE_FACTOR,
        min_stale_s: float = MIN_STALE_S,
    ) -> None:
        self._clock = clock
        self._stale_factor = stale_factor
        self._min_stale_s = min_stale_s
        self._lock = threading.Lock()
        self._watches: dict[str, _Watch] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._sent = Counter(
            "awayd_replies_sent", "Replies accepted by the SMTP server.", ["mailbox"], registry=reg
        )
        self._failed = Counter(
            "awayd_replies_failed",
            "Replies given up on (permanent SMTP error or max_delay passed).",
            ["mailbox"],
            registry=reg,
        )
        self._skips = Counter(
            "awayd_skips",
            "Messages not answered, by reason code (the table in README, How it decides).",
            ["mailbox", "reason"],
            registry=reg,
        )
        self._seen = Counter(
            "awayd_messages_seen", "New messages fetched and decided.", ["mailbox"], registry=reg
        )
        self._reconnects = Counter(
            "awayd_imap_reconnects", "IMAP connections re-established.", ["mailbox"], registry=reg
        )
        self._message_errors = Counter(
            "awayd_message_errors",  # exposed as awayd_message_errors_total
            "Messages whose handling failed (decided malformed or render-error, folder moved on).",
            ["mailbox", "reason"],
            registry=reg,
        )
        self._relay_up = Gauge(
            "awayd_relay_up",
            "1 while the SMTP relay answers, 0 while it is down or refuses our login.",
            ["relay"],
            registry=reg,
        )
        self._auth_failures = Counter(
            "awayd_smtp_auth_failures",  # exposed as awayd_smtp_auth_failures_total
            "Logins the SMTP relay refused (535); the relay is then left alone for a while.",
            ["relay"],
            registry=reg,
        )
        self._store_failures = Counter(
            "awayd_store_write_failures",  # exposed as awayd_store_write_failures_total
            "Reads or writes of the state store that failed (disk full, I/O error).",
            registry=reg,
        )
        self._refused: set[str] = set()
        self._outbox = Gauge("awayd_outbox_depth", "Replies waiting in the outbox (pending).", registry=reg)
        self._folder_idle = Gauge(
            "awayd_folder_idle",
            "1 while the folder is watched with IDLE, 0 while it is polled (no IDLE offered).",
            ["mailbox", "folder"],
            registry=reg,
        )
        self._up = Gauge("awayd_up", "1 while the daemon is running.", registry=reg)
        self._up.set(1)
        reg.register(_CheckAgeCollector(self))

    # -- events -----------------------------------------------------------------------

    def reply_sent(self, mailbox: str) -> None:
        self._sent.labels(mailbox).inc()

    def reply_failed(self, mailbox: str) -> None:
        self._failed.labels(mailbox).inc()

    def skipped(self, mailbox: str, reason: str) -> None:
        """Count a skip; `reason` is a stable code from DESIGN.md section 4."""
        self._skips.labels(mailbox, reason).inc()

    def message_error(self, mailbox: str, reason: str) -> None:
        """Count a message whose handling raised; `reason` is the decision it got instead."""
        self._message_errors.labels(mailbox, reason).inc()

    def seen(self, mailbox: str) -> None:
        self._seen.labels(mailbox).inc()

    def reconnect(self, mailbox: str) -> None:
        self._reconnects.labels(mailbox).inc()

    def folder_idle(self, mailbox: str, folder: str, idle: bool) -> None:
        """Record whether the folder's connection uses IDLE (set on every connect)."""
        self._folder_idle.labels(mailbox, folder).set(1 if idle else 0)

    def relay_up(self, relay: str, up: bool) -> None:
        """The relay answered (True) or is down or refusing our login (False)."""
        self._relay_up.labels(relay).set(1 if up else 0)
        if up:
            with self._lock:
                self._refused.discard(relay)

    def auth_failed(self, relay: str) -> None:
        """The relay refused our credentials: counted, and /healthz names it until it accepts."""
        self._auth_failures.labels(relay).inc()
        with self._lock:
            self._refused.add(relay)

    def store_failed(self) -> None:
        self._store_failures.inc()

    def set_outbox_depth(self, n: int) -> None:
        self._outbox.set(n)

    def set_up(self, up: bool) -> None:
        """Set awayd_up; the service may drop it to 0 while shutting down."""
        self._up.set(1 if up else 0)

    # -- liveness ---------------------------------------------------------------------

    def register_mailbox(self, mailbox: str, poll_interval_s: float) -> None:
        """Watch a mailbox for /healthz and pre-create its series at zero.

        Registering again (after a reload) updates the interval and keeps the registration
        time and the last check. For a mailbox on IDLE, pass the period at which the service
        proves the connection alive (IDLE keepalive or NOOP), and call checked() then.
        """
        with self._lock:
            watch = self._watches.get(mailbox)
            if watch is None:
                self._watches[mailbox] = _Watch(poll_interval_s, self._clock())
            else:
                watch.poll_interval_s = poll_interval_s
        for counter in (self._sent, self._failed, self._seen, self._reconnects):
            counter.labels(mailbox)

    def unregister_mailbox(self, mailbox: str) -> None:
        """Stop watching a mailbox removed by a reload; its counters keep their totals."""
        with self._lock:
            self._watches.pop(mailbox, None)

    def checked(self, mailbox: str, at: float) -> None:
        """Record that `mailbox` was checked (poll done, IDLE wake, NOOP) at Unix time `at`.

        An unregistered mailbox is ignored: only configured mailboxes count for health.
        """
        with self._lock:
            watch = self._watches.get(mailbox)
            if watch is not None and (watch.last_check is None or at > watch.last_check):
                watch.last_check = at

    def check_ages(self) -> dict[str, tuple[float, float]]:
        """Return {mailbox: (seconds since last check or registration, poll interval)}."""
        now = self._clock()
        with self._lock:
            return {name: (max(0.0, now - _since(w)), w.poll_interval_s) for name, w in self._watches.items()}

    def last_checks(self) -> dict[str, tuple[float, float]]:
        """Return {mailbox: (Unix time of the last check or registration, poll interval)}."""
        with self._lock:
            return {name: (_since(w), w.poll_interval_s) for name, w in self._watches.items()}

    def health(self) -> Health:
        """Stale mailboxes (not checked within max(3 x poll interval, 10 s)) and relays that
        refused our login."""
        now = self._clock()
        with self._lock:
            stale = tuple(
                sorted(
                    name
                    for name, w in self._watches.items()
                    if now - _since(w) > max(self._stale_factor * w.poll_interval_s, self._min_stale_s)
                )
            )
            refused = tuple(sorted(self._refused))
        return Health(stale, refused)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (CONTENT_TYPE_LATEST)."""
        return generate_latest(self.registry)

    def start_http(self, listen: str) -> MetricsServer:
        """Serve /metrics and /healthz on `listen` ("host:port", "[::1]:port") in a thread.

        Port 0 picks a free port; read it back from the handle's `port`.

        Raises:
            ConfigError: `listen` is not "host:port", or the address cannot be bound here.
            AwaydError: the port is in use (transient: a previous instance may be exiting).
        """
        return serve(listen, self)


def start_http(listen: str, metrics: Metrics) -> MetricsServer:
    """Serve `metrics` on `listen`; the same as metrics.start_http(listen)."""
    return metrics.start_http(listen)


def _since(watch: _Watch) -> float:
    return watch.registered_at if watch.last_check is None else watch.last_check
