"""The outbox: recorded replies go to their relay's sender; outcomes are recorded, and a reply the
relay took (250) is never sent again by this process while the store cannot record it."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from awayd.config.model import Mailbox, SmtpSettings
from awayd.core.backoff import Backoff
from awayd.errors import SendError, StateError
from awayd.pipeline import NoEvents, fault_point
from awayd.relays import Attempt, Outcome, Relay, Sender

#: The first probe of a relay that stopped answering comes within this many seconds...
PROBE_BASE_S = 1.0
#: ...and the probes never grow further apart than this: the queue drains this soon after an
#: outage ends. A probe is one connection attempt with one queued reply.
PROBE_CAP_S = 10.0


def relay_key(settings: SmtpSettings) -> SmtpSettings:
    """Mailboxes that differ only in their envelope sender share one relay (one connection)."""
    return dataclasses.replace(settings, envelope_from="")


def relay_name(settings: SmtpSettings) -> str:
    return f"{settings.host}:{settings.port}"


#: A row read ahead is used only this soon after: it stands for the read just before SMTP
#: (the lease check included), so it must not age.
READ_AHEAD_S = 0.1


class StoreHealth:
    """Whether the store can commit; while it cannot, nothing is sent.

    Every failed write calls failed(), every successful one ok(). Logged once per outage at
    error (`store.write_failed`), and `store.recovered` when a write goes through again.
    """

    def __init__(self, log: Any, events: Any, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._events = events
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._down_since: float | None = None

    @property
    def ok(self) -> bool:
        with self._lock:
            return self._down_since is None

    def failed(self, what: str, err: StateError, **fields: Any) -> None:
        self._events.store_failed()
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = self._monotonic()
        if first:
            self._log.error("store.write_failed", what=what, error=str(err), **fields,
                            note="sending paused and messages wait until the state can be written")

    def recovered(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            self._log.info("store.recovered", down_s=round(self._monotonic() - since, 1))


@dataclass(frozen=True)
class _Unrecorded:
    """An outcome the relay gave that the store could not record yet."""

    state: str  # "sent" | "failed"
    at: datetime
    error: str = ""


class Outbox:
    """Routes outbox rows to one Relay per distinct SMTP setting and records what happened."""

    def __init__(self, *, store: Any, clock: Callable[[], datetime], log: Any,
                 make_sender: Callable[[SmtpSettings], Sender], events: Any = None,
                 max_delay: timedelta = timedelta(hours=24), backoff: Backoff | None = None,
                 probe: Backoff | None = None,
                 save_copy: Callable[[Mailbox, bytes], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.log = log
        self.events = events or NoEvents()
        self.make_sender = make_sender
        self.max_delay = max_delay
        self.backoff = backoff or Backoff(base=30.0, cap=3600.0)
        self.probe = probe or Backoff(base=PROBE_BASE_S, cap=PROBE_CAP_S)
        self.save_copy = save_copy
        self.monotonic = monotonic
        self.health = StoreHealth(log, self.events, monotonic)
        self._lock = threading.Lock()
        self._relays: dict[SmtpSettings, Relay] = {}
        self._routes: dict[str, tuple[Mailbox, Relay]] = {}
        self._unrecorded: dict[int, _Unrecorded] = {}
        self._in_flight: set[int] = set()
        # The row a relay sends next, read in the round trip that marked the previous one
        # sent (stores that can: mark_sent_then_read): id -> (row or None, monotonic time).
        self._ahead: dict[int, tuple[Any, float]] = {}

    # --- routing -------------------------------------------------------------------------

    def configure(self, mailboxes: Iterable[Mailbox]) -> None:
        """Route each mailbox to its relay; relays no mailbox uses any more are stopped."""
        routes: dict[str, tuple[Mailbox, Relay]] = {}
        for mb in mailboxes:
            if mb.smtp is None:
                continue
            key = relay_key(mb.smtp)
            with self._lock:
                relay = self._relays.get(key)
                if relay is None:
                    relay = self._relays[key] = self._new_relay(key)
            routes[mb.name] = (mb, relay)
        used = {id(relay) for _mb, relay in routes.values()}
        with self._lock:
            self._routes = routes
            unused = [key for key, relay in self._relays.items() if id(relay) not in used]
            retired = [self._relays.pop(key) for key in unused]
        for relay in retired:
            # no mailbox uses it after a reload: it ends after its send in flight (not waited
            # for here); its queued replies go through their mailbox's new relay
            relay.stop(0.0)

    def _new_relay(self, settings: SmtpSettings) -> Relay:
        return Relay(relay_name(settings), make_sender=lambda: self.make_sender(settings),
                     deliver=self.deliver, store_ok=lambda: self.health.ok, on_up=self._drain_relay,
                     log=self.log, events=self.events, probe=self.probe,
                     auth_hold=settings.auth_retry, monotonic=self.monotonic)

    def submit(self, outbox_id: int, mailbox: str) -> None:
        """Hand a recorded reply to its relay; returns at once (decisions never wait for SMTP)."""
        with self._lock:
            route = self._routes.get(mailbox)
        if route is None:
            self.log.warning("outbox.no_route", outbox_id=outbox_id, mailbox=mailbox)
            return
        route[1].submit([outbox_id])

    def _drain_relay(self, relay: Relay) -> None:
        """The relay answers again: queue every pending reply it carries, whatever its next try."""
        try:
            rows = self.store.due_outbox(self.clock() + self.max_delay, limit=100_000)
        except StateError as err:
            self.health.failed("read the outbox", err)
            return
        with self._lock:
            mine = {name for name, (_mb, r) in self._routes.items() if r is relay}
        relay.submit(row.id for row in rows if row.mailbox in mine)

    # --- the periodic job ----------------------------------------------------------------

    def retry(self, *, everything: bool = False) -> int:
        """Record outcomes the store missed, drop expired replies, queue the due ones (with
        `everything`, at start, every pending one: nothing is known about the relays yet).

        Returns how many replies are pending, or -1 when the store failed.
        """
        now = self.clock()
        try:
            self._flush_unrecorded()
            if not self.health.ok:
                self.store.check_writable()
                self.health.recovered()
            for row in self.store.drop_expired(now, self.max_delay):
                self.events.reply_failed(row.mailbox)
                self.log.error("outbox.dropped", mailbox=row.mailbox, outbox_id=row.id,
                               recipient=row.recipient, reason="older than max_delay")
            by_relay: dict[int, tuple[Relay, list[int]]] = {}
            until = now + self.max_delay if everything else now
            for row in self.store.due_outbox(until, limit=1000):
                with self._lock:
                    route = self._routes.get(row.mailbox)
                if route is not None:
                    by_relay.setdefault(id(route[1]), (route[1], []))[1].append(row.id)
            for relay, ids in by_relay.values():
                relay.submit(ids)
            return int(self.store.pending_count())
        except StateError as err:
            self.health.failed("retry the outbox", err)
            return -1

    def _flush_unrecorded(self) -> None:
        with self._lock:
            waiting = list(self._unrecorded.items())
        for outbox_id, outcome in waiting:
            if outcome.state == "sent":
                self.store.mark_sent(outbox_id, outcome.at)
            else:
                self.store.mark_failed(outbox_id, outcome.error)
            with self._lock:
                self._unrecorded.pop(outbox_id, None)
            self.health.recovered()
            self.log.info("outbox.recorded_late", outbox_id=outbox_id, state=outcome.state)

    def settled(self) -> bool:
        """Every relay has nothing to do now (idle, or waiting for a probe or a hold to end)."""
        with self._lock:
            relays = list(self._relays.values())
        return all(r.settled() for r in relays)

    @property
    def refused_relays(self) -> list[str]:
        with self._lock:
            relays = list(self._relays.values())
        return sorted({r.name for r in relays if r.auth_refused})

    def close(self, timeout: float) -> None:
        """Stop every relay after its send in flight (each waits at most `timeout`)."""
        with self._lock:
            relays = list(self._relays.values())
            self._relays.clear()
            self._routes = {}
        deadline = self.monotonic() + timeout
        for relay in relays:
            relay.stop(max(0.1, deadline - self.monotonic()))
        try:
            self._flush_unrecorded()
        except StateError as err:
            self.log.error("outbox.unrecorded_at_exit", count=len(self._unrecorded), error=str(err),
                           note="these replies were sent; they will be sent again after a restart")

    # --- one row (on the relay's thread) ------------------------------------------------

    def deliver(self, outbox_id: int, sender: Sender, relay: str) -> Attempt:
        """Send one pending row and record the outcome."""
        with self._lock:
            if outbox_id in self._unrecorded or outbox_id in self._in_flight:
                # the relay took it (never a second copy), or another relay is sending it:
                # after a reload changed a mailbox's relay, the old one may still hold it
                return Attempt(Outcome.DONE)
            self._in_flight.add(outbox_id)
            routes = self._routes
        try:
            return self._deliver(outbox_id, sender, relay, routes)
        finally:
            with self._lock:
                self._in_flight.discard(outbox_id)

    def _deliver(self, outbox_id: int, sender: Sender, relay: str,
                 routes: dict[str, tuple[Mailbox, Relay]]) -> Attempt:
        try:
            row = self._read_ahead(outbox_id)
        except StateError as err:
            self.health.failed("read the outbox", err, outbox_id=outbox_id)
            return Attempt(Outcome.STORE_FAILED, str(err))
        if row is None or row.state != "pending":
            return Attempt(Outcome.DONE)
        found = routes.get(row.mailbox)
        try:
            sender.send(row.envelope_from, row.recipient, row.message)
        except SendError as err:
            return self._refused(row, err, relay)
        fault_point("after-send")
        self._record(row.id, _Unrecorded("sent", self.clock()), then=self._next_of(relay))
        self.events.reply_sent(row.mailbox)
        self.log.info("reply.sent", mailbox=row.mailbox, outbox_id=row.id, recipient=row.recipient,
                      message_id=row.message_id, relay=relay)
        mb = found[0] if found is not None else None
        if self.save_copy is not None and mb is not None and mb.save_copy:
            try:
                self.save_copy(mb, row.message)
            except Exception as err:  # deliberate: see the log line below
                self.log.warning("reply.copy_failed", mailbox=row.mailbox, folder=mb.save_copy,
                                 error=str(err))
        return Attempt(Outcome.SENT)

    def _next_of(self, relay: str) -> int | None:
        with self._lock:
            relays = [r for r in self._relays.values() if r.name == relay]
        return relays[0].peek() if len(relays) == 1 else None

    def _read_ahead(self, outbox_id: int) -> Any:
        """The row as read just before (see _record), else as the store has it now."""
        with self._lock:
            ahead = self._ahead.pop(outbox_id, None)
        if ahead is not None and self.monotonic() - ahead[1] <= READ_AHEAD_S:
            return ahead[0]
        return self.store.get_outbox(outbox_id)

    def _record(self, outbox_id: int, outcome: _Unrecorded, then: int | None = None) -> None:
        with self._lock:
            self._ahead.pop(outbox_id, None)  # an outcome makes a row read ahead stale
        read_ahead = getattr(self.store, "mark_sent_then_read", None)
        try:
            if outcome.state == "sent" and then is not None and read_ahead is not None:
                # the next row's read (with its lease check, as get_outbox) rides along:
                # one round trip per reply instead of two on the relay's thread
                row = read_ahead(outbox_id, outcome.at, then)
                with self._lock:
                    self._ahead = {then: (row, self.monotonic())}
            elif outcome.state == "sent":
                self.store.mark_sent(outbox_id, outcome.at)
            else:
                self.store.mark_failed(outbox_id, outcome.error)
        except StateError as err:
            with self._lock:
                self._unrecorded[outbox_id] = outcome
            self.health.failed(f"mark a reply {outcome.state}", err, outbox_id=outbox_id)
            return
        self.health.recovered()

    def _refused(self, row: Any, err: SendError, relay: str) -> Attempt:
        now = self.clock()
        if not err.transient:
            self._record(row.id, _Unrecorded("failed", now, str(err)))
            self.events.reply_failed(row.mailbox)
            self.log.error("smtp.send_failed", mailbox=row.mailbox, outbox_id=row.id,
                           recipient=row.recipient, error=str(err), relay=relay)
            # no code: refused here, before any word with the relay (an impossible address)
            return Attempt(Outcome.REFUSED if err.code is not None else Outcome.DONE, str(err))
        if err.scope == "message":
            delay = self.backoff.delay(row.attempts)
            outcome = Outcome.MESSAGE_DEFERRED
            self.log.warning("smtp.send_deferred", mailbox=row.mailbox, outbox_id=row.id,
                             recipient=row.recipient, retry_in_s=round(delay, 1), error=str(err),
                             relay=relay)
        else:  # the relay's fault: the row waits in the relay's queue, not on a backoff of its own
            delay = self.probe.cap
            outcome = Outcome.AUTH_REFUSED if err.scope == "auth" else Outcome.RELAY_DOWN
            self.log.info("smtp.send_deferred", mailbox=row.mailbox, outbox_id=row.id,
                          recipient=row.recipient, error=str(err), relay=relay,
                          note="waits for the relay")
        try:
            self.store.mark_retry(row.id, now + timedelta(seconds=delay), str(err))
        except StateError as store_err:
            self.health.failed("reschedule a reply", store_err, outbox_id=row.id)
        return Attempt(outcome, str(err))
