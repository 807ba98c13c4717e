"""The state store's port (SQLite or PostgreSQL behind one Protocol) and how a config opens it.

Design:
- `Store` is every method the daemon, pipeline, outbox, workers and admin commands call;
  SqliteStore (one file, one host) and PostgresStore (a server, several hosts) both satisfy
  it, with the same tables, the same times (UTC epoch seconds) and the same semantics.
- `Store.db` hands the per-table modules (store_absence) a `StateDb`: read/write
  transactions whose connection takes `?` placeholders on both backends.
- PostgreSQL migrations are versioned like SQLite's (schema_version, append-only steps, each
  step in one transaction, taken under an advisory lock so hosts starting together migrate
  once). "Once per sender per interval" across hosts is a unique key, not a read-then-write:
  `reply_claims` holds one row per (mailbox, sender_key, rule_handle); recording a reply is a
  conditional upsert that only wins when the previous claim is older than the rule's
  interval, else the whole transaction is rolled back and the message is recorded as
  `already-replied` (ReplyClaimed). Deleting a history row (forget, back, a failed or dropped
  reply, prune) releases its claim through a trigger, so every existing path keeps working.
- The outbox protocol of DESIGN §7 is unchanged: decision, pending outbox row, history
  reservation, claim and checkpoint commit in one transaction, then SMTP, then `sent`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from awayd.adapters.store_rows import (
    Checkpoint,
    OutboxDraft,
    OutboxRow,
    PruneResult,
    Report,
    Reservation,
    Suppression,
)
from awayd.config.model import StateSettings
from awayd.core.history import HistoryView
from awayd.errors import StateError


class ReplyClaimed(StateError):  # noqa: N818 (a StateError by family, not a failure)
    """Another decision (another host) answered this sender for this rule within the interval.

    Nothing was written; record the message again without the reply, as `already-replied`.
    """


class AlreadyRecorded(StateError):  # noqa: N818 (a StateError by family, not a failure)
    """This message was recorded before (by this host's earlier view, or by another host):
    nothing was written; the message is done, and the stored checkpoint is the one to trust."""


class Fenced(StateError):  # noqa: N818 (a StateError by family)
    """This host does not hold the mailbox's lease (any more): nothing was written.

    Not a store failure: the mailbox belongs to another host now (or soon) and the lease
    keeper stops its workers here."""

    transient = True


class NoStateYet(StateError):  # noqa: N818 (a StateError by family)
    """Opened read-only, the state has not been created yet (the daemon never ran on it)."""


class StateDb(Protocol):
    """Transactions on the state, for the store modules that keep one table each."""

    @property
    def path(self) -> Path | str: ...

    def read(self, what: str) -> AbstractContextManager[Any]: ...

    def write(self, what: str) -> AbstractContextManager[Any]: ...


class Store(Protocol):
    """Everything awayd remembers. Times are aware datetimes passed in; errors are StateError."""

    @property
    def db(self) -> StateDb: ...

    @property
    def backend(self) -> str: ...  # "sqlite" or "postgresql"

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def get_checkpoint(self, mailbox: str, folder: str) -> Checkpoint | None: ...

    def set_checkpoint(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None: ...

    def record(self, *, mailbox: str, folder: str, uidvalidity: int, uid: int, at: datetime,
               sender: str | None, reason: str, rule: str | None, message_id: str | None,
               reply: OutboxDraft | None = None,
               reservation: Reservation | None = None) -> int | None: ...

    def due_outbox(self, now: datetime, limit: int = 100) -> list[OutboxRow]: ...

    def get_outbox(self, outbox_id: int) -> OutboxRow | None: ...

    def pending_count(self) -> int: ...

    def mark_sent(self, outbox_id: int, now: datetime) -> None: ...

    def mark_retry(self, outbox_id: int, next_try: datetime, error: str) -> None: ...

    def mark_failed(self, outbox_id: int, error: str) -> None: ...

    def drop_expired(self, now: datetime, max_delay: timedelta) -> list[OutboxRow]: ...

    def replied_since(self, mailbox: str, sender_key: str, rule_handle: str, since: datetime) -> bool: ...

    def replies_since(self, mailbox: str, since: datetime) -> int: ...

    def is_suppressed(self, mailbox: str, address: str) -> bool: ...

    def decision_history(self, mailbox: str, now: datetime) -> HistoryView:
        """The history one decision of `mailbox` at `now` reads (the caller holds the
        mailbox's lock until the decision is recorded)."""
        ...

    def check_writable(self) -> None: ...

    def checkpoint_wal(self) -> None: ...

    def prune(self, now: datetime, keep_history: timedelta, keep_decisions: timedelta) -> PruneResult: ...

    def forget(self, mailbox: str, address: str) -> int: ...

    def suppress_add(self, entry: str, *, now: datetime, mailbox: str = "*") -> bool: ...

    def suppress_remove(self, entry: str, mailbox: str = "*") -> bool: ...

    def suppress_list(self) -> list[Suppression]: ...

    def report(self, since: datetime) -> Report: ...


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostpart}"


def state_name(settings: StateSettings) -> str:
    """Where the state lives, as `awayd check` and error messages show it (no password)."""
    return redact(settings.url) if settings.url else str(settings.path)


def backend_name(settings: StateSettings) -> str:
    return "postgresql" if settings.url else "sqlite"


def state_exists(settings: StateSettings) -> bool:
    """False only when a SQLite state file was never made; a server is asked when opened."""
    return True if settings.url else settings.path.exists()


def open_store(settings: StateSettings, *, readonly: bool = False, init_state: bool = False) -> Any:
    """The configured store, created and migrated unless `readonly`.

    Returns a Store (typed Any so callers keep the concrete store's extra methods).

    Raises:
        StateError: naming the file or server (never the password) and the cause.
    """
    if settings.url:
        try:
            from awayd.adapters.store_pg import PostgresStore  # noqa: PLC0415 (psycopg is optional)
        except ImportError as err:
            raise StateError(f"state database {redact(settings.url)}: a PostgreSQL state needs "
                             f"psycopg ({err.name or err} is missing): pip install 'awayd[postgres]'"
                             ) from err
        return PostgresStore.open(settings.url, readonly=readonly)
    from awayd.adapters.store_sqlite import SqliteStore  # noqa: PLC0415

    return SqliteStore.open(settings.path, readonly=readonly, init_state=init_state)


if TYPE_CHECKING:  # mypy checks that both stores satisfy the protocol
    from awayd.adapters.store_pg import PostgresStore
    from awayd.adapters.store_sqlite import SqliteStore

    def _both_are_stores(sqlite: SqliteStore, pg: PostgresStore) -> tuple[Store, Store]:
        return sqlite, pg
