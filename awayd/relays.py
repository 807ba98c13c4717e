"""One sender thread per SMTP relay: its own queue, connection, timeouts and up/down/auth state."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from awayd.core.backoff import Backoff
from awayd.errors import AwaydError

#: A relay that refused our credentials is left alone this long at first, doubling up to...
AUTH_HOLD_S = 15 * 60.0
#: ...this many times as long (15 min to 4 h by default): each try costs one failed login.
AUTH_HOLD_GROWTH = 16
#: Seconds between checks of a store that cannot commit (no send meanwhile).
STORE_WAIT_S = 0.5


class Outcome(Enum):
    """What became of one attempt; it drives the relay's state."""

    SENT = "sent"  # 250, whether or not the store recorded it yet
    DONE = "done"  # nothing to send: already sent, failed, dropped or pruned
    REFUSED = "refused"  # the relay refused this reply for good (5xx): recorded as failed
    MESSAGE_DEFERRED = "message-deferred"  # the relay answered 4xx to this reply: row backoff
    RELAY_DOWN = "relay-down"  # no answer, refused connection, timeout, TLS, 421
    AUTH_REFUSED = "auth-refused"  # 535: our credentials
    STORE_FAILED = "store-failed"  # the store could not be read or written: try again later


class Sender(Protocol):
    def send(self, envelope_from: str, recipient: str, message: bytes) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    error: str = ""


#: Sends one outbox row through the given sender and records the result (Outbox.deliver).
Deliver = Callable[[int, Sender, str], Attempt]


class Relay:
    """Drains the outbox rows of one relay on a thread of its own.

    A relay that does not answer holds only this thread: other relays and every IMAP worker go
    on. While it is down one row at a time probes it (backoff `probe`); the first success
    sends everything queued at once (`on_up` queues every pending row of the relay). After a
    refused login (535) nothing is tried for `auth_hold` seconds, doubling on each refusal up to
    16 times as long; the replies stay queued.
    """

    def __init__(self, name: str, *, make_sender: Callable[[], Sender], deliver: Deliver,
                 store_ok: Callable[[], bool], on_up: Callable[[Relay], None], log: Any,
                 events: Any, probe: Backoff, auth_hold: float = AUTH_HOLD_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._make_sender = make_sender
        self._deliver = deliver
        self._store_ok = store_ok
        self._on_up = on_up
        self._log = log.bind(relay=name)
        self._events = events
        self._probe = probe
        self._auth_hold = auth_hold
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()
        self._queued: set[int] = set()
        self._busy: int | None = None
        self._stop = False
        self._down_since: float | None = None
        self._failures = 0
        self._not_before = 0.0
        self._auth_refusals = 0
        self._sender: Sender | None = None
        events.relay_up(name, True)
        self._thread = threading.Thread(target=self._run, name=f"relay-{name}", daemon=True)
        self._thread.start()

    # --- called from other threads -----------------------------------------------------

    def submit(self, ids: Iterable[int]) -> None:
        """Queue outbox rows (ignoring those already queued or being sent) and wake the thread."""
        with self._cond:
            for outbox_id in ids:
                if outbox_id in self._queued or outbox_id == self._busy:
                    continue
                self._queued.add(outbox_id)
                self._queue.append(outbox_id)
            self._cond.notify_all()

    @property
    def auth_refused(self) -> bool:
        with self._cond:
            return self._auth_refusals > 0

    def settled(self) -> bool:
        """Nothing queued or in flight, or nothing can go until a probe or hold time comes."""
        with self._cond:
            if self._busy is not None:
                return False
            return not self._queue or self._not_before > self._monotonic()

    def peek(self) -> int | None:
        """The row this relay will send next if nothing changes (the outbox reads it ahead)."""
        with self._cond:
            return self._queue[0] if self._queue and not self._stop else None

    def stop(self, timeout: float) -> None:
        """Finish the send in flight (up to `timeout`), then close the connection."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # --- the thread ----------------------------------------------------------------------

    def _next(self) -> int | None:
        with self._cond:
            while True:
                if self._stop:
                    return None
                wait = None
                if self._queue:
                    wait = self._not_before - self._monotonic()
                    if not self._store_ok():
                        wait = STORE_WAIT_S
                    elif wait <= 0:
                        outbox_id = self._queue.popleft()
                        self._queued.discard(outbox_id)
                        self._busy = outbox_id
                        return outbox_id
                self._cond.wait(wait)

    def _run(self) -> None:
        try:
            while (outbox_id := self._next()) is not None:
                attempt = self._attempt(outbox_id)
                hold = self._after(attempt)
                with self._cond:  # one step, so that settled() never sees the row nowhere
                    self._busy = None
                    if hold is not None:
                        # the row stays first in line; nothing goes through before `hold`
                        self._not_before = max(self._not_before, hold)
                        if outbox_id not in self._queued:
                            self._queued.add(outbox_id)
                            self._queue.appendleft(outbox_id)
        finally:
            sender, self._sender = self._sender, None
            if sender is not None:
                with contextlib.suppress(AwaydError, OSError):
                    sender.close()

    def _attempt(self, outbox_id: int) -> Attempt:
        try:
            if self._sender is None:
                self._sender = self._make_sender()
            return self._deliver(outbox_id, self._sender, self.name)
        except AwaydError as err:  # a sender that cannot be built (CA file unreadable)
            return Attempt(Outcome.RELAY_DOWN, str(err))
        except Exception as err:  # deliberate: one bad row must not end the relay's thread
            # not queued again here: the outbox job offers the row again in a few seconds
            self._log.error("outbox.deliver_crashed", outbox_id=outbox_id, error=repr(err))
            return Attempt(Outcome.DONE, repr(err))

    def _after(self, attempt: Attempt) -> float | None:
        """Update the relay's state; returns the time before which the row must not be tried
        again (it stays first in line), or None when the row is done with."""
        outcome = attempt.outcome
        now = self._monotonic()
        if outcome in (Outcome.SENT, Outcome.MESSAGE_DEFERRED, Outcome.REFUSED):
            self._relay_up(now)  # the relay answered
            return None
        if outcome is Outcome.RELAY_DOWN:
            self._failures += 1
            if self._down_since is None:
                self._down_since = now
                self._events.relay_up(self.name, False)
                self._log.warning("smtp.relay_down", error=attempt.error,
                                  note="replies stay queued; the relay is probed until it answers")
            return now + self._probe.delay(self._failures - 1)
        if outcome is Outcome.AUTH_REFUSED:
            self._auth_refusals += 1
            hold = min(self._auth_hold * 2.0 ** (self._auth_refusals - 1),
                       self._auth_hold * AUTH_HOLD_GROWTH)
            self._events.relay_up(self.name, False)
            self._events.auth_failed(self.name)
            self._log.error("smtp.auth_failed", error=attempt.error, retry_in_s=round(hold),
                            refusals=self._auth_refusals,
                            note="check the relay's username and password; replies stay queued")
            return now + hold
        if outcome is Outcome.STORE_FAILED:
            return now + STORE_WAIT_S
        return None

    def _relay_up(self, now: float) -> None:
        was_down = self._down_since is not None or self._auth_refusals > 0
        with self._cond:
            self._not_before = 0.0
        if not was_down:
            return
        down_for = now - self._down_since if self._down_since is not None else 0.0
        self._down_since = None
        self._failures = 0
        self._auth_refusals = 0
        self._events.relay_up(self.name, True)
        self._log.info("smtp.relay_up", down_s=round(down_for, 1),
                       note="sending every queued reply now")
        self._on_up(self)

