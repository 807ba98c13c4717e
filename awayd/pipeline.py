"""One message end to end: decide → record (outbox row, reservation, checkpoint) → queue for its relay."""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from awayd.adapters.store_api import AlreadyRecorded, Fenced, ReplyClaimed
from awayd.adapters.store_sqlite import OutboxDraft, Reservation
from awayd.config.model import Mailbox
from awayd.core import reasons as r
from awayd.core.absence import OwnerAbsence
from awayd.core.decide import Decision, judge
from awayd.errors import StateError

if TYPE_CHECKING:
    from awayd.outbox import Outbox

Clock = Callable[[], datetime]

#: Environment variable that makes the process SIGKILL itself at a named point (crash tests).
FAULT_ENV = "AWAYD_FAULT_INJECT"


def fault_point(name: str) -> None:
    """Die without cleanup at `name` when the crash-test switch asks for it."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def new_message_id(domain: str) -> str:
    return f"<awayd.{secrets.token_hex(12)}@{domain}>"


class Events(Protocol):
    """Where outcomes are reported (metrics); a no-op implementation is fine."""

    def seen(self, mailbox: str) -> None: ...
    def skipped(self, mailbox: str, reason: str) -> None: ...
    def reply_sent(self, mailbox: str) -> None: ...
    def reply_failed(self, mailbox: str) -> None: ...
    def message_error(self, mailbox: str, reason: str) -> None: ...
    def relay_up(self, relay: str, up: bool) -> None: ...
    def auth_failed(self, relay: str) -> None: ...
    def store_failed(self) -> None: ...


class NoEvents:
    def seen(self, mailbox: str) -> None:
        pass

    def reply_sent(self, mailbox: str) -> None:
        pass

    def reply_failed(self, mailbox: str) -> None:
        pass

    def relay_up(self, relay: str, up: bool) -> None:
        pass

    def auth_failed(self, relay: str) -> None:
        pass

    def store_failed(self) -> None:
        pass

    def skipped(self, mailbox: str, reason: str) -> None:
        pass

    def message_error(self, mailbox: str, reason: str) -> None:
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
    """Decides and records messages and hands replies to the outbox. Thread-safe.

    Recording never waits for SMTP: the outbox row, the history reservation and the checkpoint
    are committed in one transaction, then the reply is queued for its relay's sender thread.
    """

    def __init__(self, *, store: Any, clock: Clock, outbox: Outbox, log: Any,
                 events: Events | None = None,
                 absences: Callable[[str], OwnerAbsence | None] | None = None) -> None:
        self.store = store
        self.absences = absences  # the owner's absence of a mailbox, read for each decision
        self.clock = clock
        self.outbox = outbox
        self.log = log
        self.events = events or NoEvents()
        self._mailbox_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock_for(self, mailbox: str) -> threading.Lock:
        with self._locks_guard:
            return self._mailbox_locks.setdefault(mailbox, threading.Lock())

    def _record(self, item: Incoming, now: datetime, decision: Decision, wire: bytes | None) -> int | None:
        reply = decision.reply
        return self.store.record(  # type: ignore[no-any-return]
            mailbox=item.mailbox.name, folder=item.folder, uidvalidity=item.uidvalidity,
            uid=item.uid, at=now, sender=decision.sender, reason=decision.reason,
            rule=decision.rule_name, message_id=decision.message_id,
            reply=None if reply is None or wire is None else OutboxDraft(
                message_id=reply.message_id, recipient=reply.envelope_to,
                envelope_from=reply.envelope_from, message=wire),
            reservation=None if reply is None or wire is None or decision.rule is None else Reservation(
                sender_key=decision.sender_key or "", rule_handle=decision.rule.handle,
                interval=decision.rule.interval),
        )

    def process(self, item: Incoming) -> Decision:
        """Decide one message and commit the decision, outbox row and checkpoint together.

        Raises:
            AlreadyRecorded: the message was recorded before (another host, a stale view of
                the checkpoint): nothing was written, the message is done.
            Fenced: this host does not hold the mailbox's lease (any more): nothing was
                written; logged as `lease.fenced`, not as a store failure.
            StateError: the store could not be read or written. Not the message's fault: the
                checkpoint did not move, and the caller decides the message again later.
        """
        mb = item.mailbox
        self.events.seen(mb.name)
        with self._lock_for(mb.name):  # history read and reservation must not interleave
            now = self.clock()
            try:
                absence = self.absences(mb.name) if self.absences is not None else None
                # on PostgreSQL the guards' reads come in one round trip (store_pg_history)
                history = self.store.decision_history(mb.name, now)
                judged = judge(item.raw, mb, now=now, history=history,
                               new_message_id=new_message_id, arrival=item.internaldate,
                               absence=absence)
                decision = judged.decision
                try:
                    outbox_id = self._record(item, now, decision, judged.wire)
                except ReplyClaimed:
                    # answered meanwhile, by a host that recorded it first: the claim is the
                    # reply, this message is one more from an answered sender
                    decision = replace(decision, decision="skip", reason=r.ALREADY_REPLIED,
                                       reply=None, detail=f"{decision.sender_key} was answered "
                                       f"meanwhile (rule {decision.rule_name!r})")
                    outbox_id = self._record(item, now, decision, None)
            except (AlreadyRecorded, Fenced):
                raise  # not the store's fault: the folder worker moves on or stops
            except StateError as err:
                self.outbox.health.failed("record a decision", err, mailbox=mb.name,
                                          folder=item.folder, uid=item.uid)
                raise
        self.outbox.health.recovered()
        if judged.error is not None:
            # one line at error level: the message is recorded and the folder moves on
            self.events.message_error(mb.name, decision.reason)
            self.log.error("message.processed", mailbox=mb.name, folder=item.folder,
                           uid=item.uid, sender=decision.sender, reason=decision.reason,
                           rule=decision.rule_name, detail=decision.detail, error=judged.error)
        else:
            event = self.log.error if decision.reason == r.RENDER_ERROR else self.log.info
            event("message.processed", mailbox=mb.name, folder=item.folder, uid=item.uid,
                  sender=decision.sender, reason=decision.reason, rule=decision.rule_name,
                  detail=decision.detail)
        if decision.decision != "reply":
            self.events.skipped(mb.name, decision.reason)
        if outbox_id is not None:
            fault_point("after-record")
            self.outbox.submit(outbox_id, mb.name)
        return decision
