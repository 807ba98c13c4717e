"""One message end to end: decide → outbox (one transaction) → send → record the outcome."""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from awayd.adapters.store_sqlite import OutboxDraft, Reservation
from awayd.configtypes import Mailbox, SmtpSettings
from awayd.core import reasons as r
from awayd.core.absence import OwnerAbsence
from awayd.core.backoff import Backoff
from awayd.core.decide import Decision, decide
from awayd.errors import SendError, StateError

Clock = Callable[[], datetime]

#: Environment variable that makes the process SIGKILL itself at a named point (crash tests).
FAULT_ENV = "AWAYD_FAULT_INJECT"


def fault_point(name: str) -> None:
    """Die without cleanup at `name` when the crash-test switch asks for it."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def new_message_id(domain: str) -> str:
    return f"<awayd.{secrets.token_hex(12)}@{domain}>"


class Sender(Protocol):
    def send(self, envelope_from: str, recipient: str, message: bytes) -> None: ...
    def close(self) -> None: ...


class Events(Protocol):
    """Where outcomes are reported (metrics); a no-op implementation is fine."""

    def seen(self, mailbox: str) -> None: ...
    def skipped(self, mailbox: str, reason: str) -> None: ...
    def reply_sent(self, mailbox: str) -> None: ...
    def reply_failed(self, mailbox: str) -> None: ...


class NoEvents:
    def seen(self, mailbox: str) -> None:
        pass

    def skipped(self, mailbox: str, reason: str) -> None:
        pass

    def reply_sent(self, mailbox: str) -> None:
        pass

    def reply_failed(self, mailbox: str) -> None:
        pass


@dataclass(frozen=True)
class Incoming:
    mailbox: Mailbox
    folder: str
    uidvalidity: int
    uid: int
    internaldate: datetime | None
    raw: bytes


class Pipeline:
    """Decides and records messages, sends replies, retries the outbox. Thread-safe."""

    def __init__(self, *, store: Any, clock: Clock, sender_for: Callable[[SmtpSettings], Sender],
                 log: Any, events: Events | None = None, max_delay: timedelta = timedelta(hours=24),
                 backoff: Backoff | None = None,
                 save_copy: Callable[[Mailbox, bytes], None] | None = None,
                 absences: Callable[[str], OwnerAbsence | None] | None = None) -> None:
        self.store = store
        self.absences = absences  # the owner's absence of a mailbox, read for each decision
        self.clock = clock
        self.sender_for = sender_for
        self.log = log
        self.events = events or NoEvents()
        self.max_delay = max_delay
        self.backoff = backoff or Backoff(base=30.0, cap=3600.0)
        self.save_copy = save_copy
        self._mailbox_locks: dict[str, threading.Lock] = {}
        self._send_lock = threading.Lock()
        self._in_flight: set[int] = set()
        self._locks_guard = threading.Lock()
        self._mailboxes: dict[str, Mailbox] = {}

    def _lock_for(self, mailbox: str) -> threading.Lock:
        with self._locks_guard:
            return self._mailbox_locks.setdefault(mailbox, threading.Lock())

    def process(self, item: Incoming) -> Decision:
        """Decide one message and commit the decision, outbox row and checkpoint together."""
        mb = item.mailbox
        self.events.seen(mb.name)
        with self._lock_for(mb.name):  # history read and reservation must not interleave
            now = self.clock()
            try:
                absence = self.absences(mb.name) if self.absences is not None else None
                decision = decide(item.raw, mb, now=now, history=self.store,
                                  new_message_id=new_message_id, arrival=item.internaldate,
                                  absence=absence)
            except Exception as err:  # deliberate: see the log line below
                self.log.error("message.engine_failed", mailbox=mb.name, folder=item.folder,
                               uid=item.uid, error=repr(err))
                decision = Decision("skip", r.MALFORMED, f"engine error: {err!r}")
            reply = decision.reply
            outbox_id = self.store.record(
                mailbox=mb.name, folder=item.folder, uidvalidity=item.uidvalidity, uid=item.uid,
                at=now, sender=decision.sender, reason=decision.reason, rule=decision.rule_name,
                message_id=decision.message_id,
                reply=None if reply is None else OutboxDraft(
                    message_id=reply.message_id, recipient=reply.envelope_to,
                    envelope_from=reply.envelope_from, message=reply.to_bytes()),
                reservation=None if reply is None or decision.rule is None else Reservation(
                    sender_key=decision.sender_key or "", rule_handle=decision.rule.handle),
            )
        event = self.log.error if decision.reason == r.RENDER_ERROR else self.log.info
        event("message.processed", mailbox=mb.name, folder=item.folder, uid=item.uid,
              sender=decision.sender, reason=decision.reason, rule=decision.rule_name,
              detail=decision.detail)
        if decision.decision != "reply":
            self.events.skipped(mb.name, decision.reason)
        if outbox_id is not None:
            fault_point("after-record")
            self.deliver_id(outbox_id)
        return decision

    def deliver_id(self, outbox_id: int) -> None:
        """Send one outbox row; mark it sent, to retry, or failed. Never raises SendError."""
        with self._locks_guard:
            if outbox_id in self._in_flight:
                return
            self._in_flight.add(outbox_id)
        try:
            row = self.store.get_outbox(outbox_id)  # re-read: another thread may have sent it
            if row is not None and row.state == "pending":
                self._deliver(row)
        finally:
            with self._locks_guard:
                self._in_flight.discard(outbox_id)

    def _deliver(self, row: Any) -> None:
        mb = self._mailboxes.get(row.mailbox)
        if mb is None or mb.smtp is None:
            self.log.warning("outbox.no_route", outbox_id=row.id, mailbox=row.mailbox)
            return
        try:
            with self._send_lock:  # smtplib connections are not thread-safe
                self.sender_for(mb.smtp).send(row.envelope_from, row.recipient, row.message)
        except SendError as err:
            now = self.clock()
            if err.transient:
                delay = self.backoff.delay(row.attempts)
                self.store.mark_retry(row.id, now + timedelta(seconds=delay), str(err))
                self.log.warning("smtp.send_deferred", mailbox=row.mailbox, outbox_id=row.id,
                                 recipient=row.recipient, retry_in_s=round(delay, 1), error=str(err))
            else:
                self.store.mark_failed(row.id, str(err))
                self.events.reply_failed(row.mailbox)
                self.log.error("smtp.send_failed", mailbox=row.mailbox, outbox_id=row.id,
                               recipient=row.recipient, error=str(err))
            return
        fault_point("after-send")
        self.store.mark_sent(row.id, self.clock())
        self.events.reply_sent(row.mailbox)
        self.log.info("reply.sent", mailbox=row.mailbox, outbox_id=row.id, recipient=row.recipient,
                      message_id=row.message_id)
        if self.save_copy is not None and mb.save_copy:
            try:
                self.save_copy(mb, row.message)
            except Exception as err:  # deliberate: see the log line below
                self.log.warning("reply.copy_failed", mailbox=row.mailbox, folder=mb.save_copy,
                                 error=str(err))

    def retry_outbox(self) -> int:
        """Drop expired rows, send the due ones; returns how many are still pending."""
        now = self.clock()
        try:
            for row in self.store.drop_expired(now, self.max_delay):
                self.log.error("outbox.dropped", mailbox=row.mailbox, outbox_id=row.id,
                               recipient=row.recipient, reason="older than max_delay")
            for row in self.store.due_outbox(now, limit=100):
                self.deliver_id(row.id)
            return int(self.store.pending_count())
        except StateError as err:
            self.log.error("outbox.retry_failed", error=str(err))
            return -1

    def remember(self, mailbox: Mailbox) -> None:
        self._mailboxes[mailbox.name] = mailbox
