"""The state store on one SQLite file (WAL): checkpoints, history, outbox, decisions, opt-outs."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from awayd.adapters.store_api import AlreadyRecorded, ReplyClaimed
from awayd.adapters.store_rows import (
    Checkpoint,
    MailboxReport,
    OutboxCounts,
    OutboxDraft,
    OutboxRow,
    PruneResult,
    ReasonCount,
    Report,
    Reservation,
    RuleReport,
    Suppression,
    build_report,
    from_ts,
    normalize_entry,
    outbox_row,
    to_ts,
)
from awayd.adapters.store_schema import Database
from awayd.errors import StateError

# The row values live in store_rows; they are re-exported so callers import one module.
__all__ = [
    "Checkpoint",
    "MailboxReport",
    "OutboxCounts",
    "OutboxDraft",
    "OutboxRow",
    "PruneResult",
    "ReasonCount",
    "Report",
    "Reservation",
    "RuleReport",
    "SqliteStore",
    "Suppression",
]

_MAX_ERROR_TEXT = 1000
#: After a checkpoint the WAL file is cut back to this size (SQLite would keep its largest
#: size for ever), so the WAL alone cannot fill a small volume.
WAL_SIZE_LIMIT = 1 << 20


class SqliteStore:
    """Everything awayd remembers, behind one connection that several threads may share.

    Implements core.history.HistoryView. Every time is an aware datetime passed in by the
    caller; the store never reads the clock. Write methods raise StateError (transient when the
    database was locked) and leave the database unchanged on failure.
    """

    def __init__(self, db: Database) -> None:
        """Use SqliteStore.open()."""
        self._db = db

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False, busy_timeout: float = 5.0,
             init_state: bool = False) -> SqliteStore:
        """Open (and create, with mode 0600, and migrate) the state database at `path`.

        `readonly` opens an existing database without ever writing to it, for `explain` and
        `report`. `busy_timeout` is how long to wait, in seconds, for another process's lock.
        An existing empty file is refused unless `init_state` (`awayd run --init-state`).

        Raises:
            StateError: naming the file and the cause: cannot be created or read, not a
                database, not awayd's, empty, a newer schema, or locked past `busy_timeout`.
        """
        db = Database.open(path, readonly=readonly, busy_timeout=busy_timeout,
                           init_state=init_state)
        if not readonly:
            db.limit_wal(WAL_SIZE_LIMIT)
        return cls(db)

    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def backend(self) -> str:
        return "sqlite"

    @property
    def db(self) -> Database:
        """The connection, for the store modules that keep one table each (store_absence)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- checkpoints ----------------------------------------------------------------------

    def get_checkpoint(self, mailbox: str, folder: str) -> Checkpoint | None:
        with self._db.read("read a checkpoint") as conn:
            row = conn.execute(
                "SELECT uidvalidity, last_uid FROM checkpoints WHERE mailbox = ? AND folder = ?",
                (mailbox, folder),
            ).fetchone()
        return None if row is None else Checkpoint(int(row[0]), int(row[1]))

    def set_checkpoint(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        """Set the checkpoint as given, also backwards (first run, changed UIDVALIDITY)."""
        with self._db.write("set a checkpoint") as conn:
            conn.execute(
                "INSERT INTO checkpoints (mailbox, folder, uidvalidity, last_uid)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (mailbox, folder) DO UPDATE"
                " SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid",
                (mailbox, folder, uidvalidity, last_uid),
            )

    # --- one message -----------------------------------------------------------------------

    def record(
        self,
        *,
        mailbox: str,
        folder: str,
        uidvalidity: int,
        uid: int,
        at: datetime,
        sender: str | None,
        reason: str,
        rule: str | None,
        message_id: str | None,
        reply: OutboxDraft | None = None,
        reservation: Reservation | None = None,
    ) -> int | None:
        """Record the decision about one message in one transaction; return the outbox id.

        Writes the decision, the pending outbox row (`reply`, first try at `at`), the history
        reservation (`reservation`, replied_at = `at`) and advances the folder's checkpoint to
        `uid` (never backwards, and only within the same UIDVALIDITY). After a crash either all
        of it is there, and the pending reply is retried with the same bytes, or none of it.

        Raises:
            StateError: this message (mailbox, folder, uidvalidity, uid) was already recorded;
                nothing is written then.
            ReplyClaimed: the reservation's sender holds a reply of the rule younger than its
                interval (recorded meanwhile); nothing is written then.
            ValueError: a reservation without a reply.
        """
        if reservation is not None and reply is None:
            raise ValueError("a history reservation needs the reply it reserves for")
        when = to_ts(at)
        with self._db.write("record a decision") as conn:
            outbox_id: int | None = None
            if reply is not None:
                outbox_id = conn.execute(
                    "INSERT INTO outbox (mailbox, folder, uid, rule, message_id, recipient,"
                    " envelope_from, bytes, next_try, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        mailbox,
                        folder,
                        uid,
                        rule,
                        reply.message_id,
                        reply.recipient,
                        reply.envelope_from,
                        reply.message,
                        when,
                        when,
                    ),
                ).lastrowid
            try:
                conn.execute(
                    "INSERT INTO decisions (mailbox, folder, uidvalidity, uid, at, sender,"
                    " reason, rule, message_id, outbox_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (mailbox, folder, uidvalidity, uid, when, sender, reason, rule, message_id, outbox_id),
                )
            except sqlite3.IntegrityError as err:
                raise AlreadyRecorded(
                    f"state database {self.path}: {mailbox} {folder} uid {uid}"
                    f" (uidvalidity {uidvalidity}) was already recorded"
                ) from err
            if reservation is not None:
                if reservation.interval > timedelta(0) and conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM history WHERE mailbox = ? AND sender_key = ?"
                    " AND rule_handle = ? AND replied_at >= ?)",
                    (mailbox, reservation.sender_key, reservation.rule_handle,
                     when - reservation.interval.total_seconds()),
                ).fetchone()[0]:
                    # inside BEGIN IMMEDIATE: no other writer can slip in between
                    raise ReplyClaimed(f"state database {self.path}: {reservation.sender_key} was"
                                       f" already answered in mailbox {mailbox}")
                conn.execute(
                    "INSERT INTO history (mailbox, sender_key, rule_handle, replied_at, state,"
                    " outbox_id) VALUES (?, ?, ?, ?, 'reserved', ?)",
                    (mailbox, reservation.sender_key, reservation.rule_handle, when, outbox_id),
                )
            conn.execute(
                "INSERT INTO checkpoints (mailbox, folder, uidvalidity, last_uid)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (mailbox, folder) DO UPDATE"
                " SET last_uid = max(last_uid, excluded.last_uid)"
                " WHERE uidvalidity = excluded.uidvalidity",
                (mailbox, folder, uidvalidity, uid),
            )
        return outbox_id

    # --- outbox ----------------------------------------------------------------------------

    def due_outbox(self, now: datetime, limit: int = 100) -> list[OutboxRow]:
        """Pending replies whose next try is at or before `now`, oldest first."""
        with self._db.read("read the outbox") as conn:
            rows = conn.execute(
                "SELECT id, mailbox, folder, uid, rule, message_id, recipient, envelope_from,"
                " bytes, state, attempts, next_try, created_at, last_error FROM outbox"
                " WHERE state = 'pending' AND next_try <= ? ORDER BY next_try, id LIMIT ?",
                (to_ts(now), limit),
            ).fetchall()
        return [outbox_row(row) for row in rows]

    def get_outbox(self, outbox_id: int) -> OutboxRow | None:
        """The outbox row `outbox_id` in whatever state, None when there is none (pruned)."""
        with self._db.read("read the outbox") as conn:
            row = conn.execute(
                "SELECT id, mailbox, folder, uid, rule, message_id, recipient, envelope_from,"
                " bytes, state, attempts, next_try, created_at, last_error FROM outbox WHERE id = ?",
                (outbox_id,),
            ).fetchone()
        return None if row is None else outbox_row(row)

    def pending_count(self) -> int:
        with self._db.read("count the outbox") as conn:
            row = conn.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()
        return int(row[0])

    def mark_sent(self, outbox_id: int, now: datetime) -> None:
        """The server took the reply: the outbox row is sent, its reservation a reply.

        Applies whatever the row's state: a reply dropped while it was being sent did go out
        (its released reservation is not restored).
        """
        with self._db.write("mark a reply sent") as conn:
            self._update_outbox(
                conn,
                outbox_id,
                "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1,"
                " last_error = NULL WHERE id = ?",
                (to_ts(now), outbox_id),
            )
            conn.execute("UPDATE history SET state = 'sent' WHERE outbox_id = ?", (outbox_id,))

    def mark_retry(self, outbox_id: int, next_try: datetime, error: str) -> None:
        """A temporary failure: count the attempt and try again at `next_try`."""
        with self._db.write("reschedule a reply") as conn:
            self._update_outbox(
                conn,
                outbox_id,
                "UPDATE outbox SET attempts = attempts + 1, next_try = ?, last_error = ?"
                " WHERE id = ? AND state = 'pending'",
                (to_ts(next_try), error[:_MAX_ERROR_TEXT], outbox_id),
            )

    def mark_failed(self, outbox_id: int, error: str) -> None:
        """A permanent failure: the reply is failed and the sender's reservation released."""
        with self._db.write("mark a reply failed") as conn:
            self._update_outbox(
                conn,
                outbox_id,
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?"
                " WHERE id = ? AND state = 'pending'",
                (error[:_MAX_ERROR_TEXT], outbox_id),
            )
            conn.execute("DELETE FROM history WHERE outbox_id = ? AND state = 'reserved'", (outbox_id,))

    def drop_expired(self, now: datetime, max_delay: timedelta) -> list[OutboxRow]:
        """Drop pending replies queued before `now - max_delay`; return them for the log.

        Their reservations are released: a late auto-reply helps nobody, and the sender may be
        answered next time.
        """
        cutoff = to_ts(now) - max_delay.total_seconds()
        with self._db.write("drop expired replies") as conn:
            rows = conn.execute(
                "SELECT id, mailbox, folder, uid, rule, message_id, recipient, envelope_from,"
                " bytes, state, attempts, next_try, created_at, last_error FROM outbox"
                " WHERE state = 'pending' AND created_at < ? ORDER BY id",
                (cutoff,),
            ).fetchall()
            ids = [(int(row[0]),) for row in rows]
            conn.executemany("UPDATE outbox SET state = 'dropped' WHERE id = ?", ids)
            conn.executemany("DELETE FROM history WHERE outbox_id = ? AND state = 'reserved'", ids)
        return [outbox_row(row, state="dropped") for row in rows]

    def _update_outbox(
        self, conn: sqlite3.Connection, outbox_id: int, sql: str, params: tuple[Any, ...]
    ) -> None:
        if conn.execute(sql, params).rowcount:
            return
        exists = conn.execute("SELECT 1 FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
        if exists is None:
            raise StateError(f"state database {self.path}: no outbox row {outbox_id}")
        # Not pending any more (dropped meanwhile): nothing to change.

    # --- HistoryView -----------------------------------------------------------------------

    def replied_since(self, mailbox: str, sender_key: str, rule_handle: str, since: datetime) -> bool:
        with self._db.read("read the history") as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM history WHERE mailbox = ? AND sender_key = ?"
                " AND rule_handle = ? AND replied_at >= ?)",
                (mailbox, sender_key, rule_handle, to_ts(since)),
            ).fetchone()
        return bool(row[0])

    def replies_since(self, mailbox: str, since: datetime) -> int:
        with self._db.read("read the history") as conn:
            row = conn.execute(
                "SELECT count(*) FROM history WHERE mailbox = ? AND replied_at >= ?",
                (mailbox, to_ts(since)),
            ).fetchone()
        return int(row[0])

    def is_suppressed(self, mailbox: str, address: str) -> bool:
        address = address.strip().lower()
        domain = "@" + address.rpartition("@")[2]
        with self._db.read("read the suppression list") as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM suppressions WHERE mailbox IN (?, '*') AND entry IN (?, ?))",
                (mailbox, address, domain),
            ).fetchone()
        return bool(row[0])

    def decision_history(self, mailbox: str, now: datetime) -> SqliteStore:
        """The store itself: its reads are local and cheap (see PostgresStore's)."""
        return self

    # --- maintenance -----------------------------------------------------------------------

    def check_writable(self) -> None:
        """Commit a write that changes nothing.

        Raises:
            StateError: the database still cannot commit (disk full, read-only, locked).
        """
        with self._db.write("check that the state can be written") as conn:
            conn.execute("UPDATE schema_version SET version = version")

    def checkpoint_wal(self) -> None:
        """Copy the WAL into the database and truncate it (run regularly, e.g. every minute).

        Raises:
            StateError: the checkpoint failed (disk full, I/O error).
        """
        self._db.checkpoint()

    def prune(self, now: datetime, keep_history: timedelta, keep_decisions: timedelta) -> PruneResult:
        """Delete history older than `keep_history` (the longest rule interval), decisions and
        finished outbox rows older than `keep_decisions`. Pending replies and their
        reservations are kept whatever their age (drop_expired handles those)."""
        history_cutoff = to_ts(now) - keep_history.total_seconds()
        decisions_cutoff = to_ts(now) - keep_decisions.total_seconds()
        with self._db.write("prune") as conn:
            history = conn.execute(
                "DELETE FROM history WHERE replied_at < ? AND (outbox_id IS NULL OR outbox_id"
                " NOT IN (SELECT id FROM outbox WHERE state = 'pending'))",
                (history_cutoff,),
            ).rowcount
            decisions = conn.execute("DELETE FROM decisions WHERE at < ?", (decisions_cutoff,)).rowcount
            outbox = conn.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND created_at < ?",
                (decisions_cutoff,),
            ).rowcount
        return PruneResult(history=history, decisions=decisions, outbox=outbox)

    def forget(self, mailbox: str, address: str) -> int:
        """Delete every history row of `address` in `mailbox`; return how many."""
        with self._db.write("forget a sender") as conn:
            return conn.execute(
                "DELETE FROM history WHERE mailbox = ? AND lower(sender_key) = ?",
                (mailbox, address.strip().lower()),
            ).rowcount

    def suppress_add(self, entry: str, *, now: datetime, mailbox: str = "*") -> bool:
        """Add an address or @domain to the opt-out list; False if it was already there.

        Raises:
            ValueError: `entry` is neither an address nor an @domain.
        """
        normal = normalize_entry(entry)
        with self._db.write("add a suppression") as conn:
            return bool(
                conn.execute(
                    "INSERT OR IGNORE INTO suppressions (mailbox, entry, added_at) VALUES (?, ?, ?)",
                    (mailbox, normal, to_ts(now)),
                ).rowcount
            )

    def suppress_remove(self, entry: str, mailbox: str = "*") -> bool:
        """Remove an entry; False if it was not on the list."""
        normal = normalize_entry(entry)
        with self._db.write("remove a suppression") as conn:
            return bool(
                conn.execute(
                    "DELETE FROM suppressions WHERE mailbox = ? AND entry = ?", (mailbox, normal)
                ).rowcount
            )

    def suppress_list(self) -> list[Suppression]:
        with self._db.read("list suppressions") as conn:
            rows = conn.execute(
                "SELECT mailbox, entry, added_at FROM suppressions ORDER BY mailbox, entry"
            ).fetchall()
        return [Suppression(str(m), str(e), from_ts(a)) for m, e, a in rows]

    def report(self, since: datetime) -> Report:
        """Decisions per mailbox, reason and rule, and what became of the replies, since
        `since` (decision time for both)."""
        start = to_ts(since)
        with self._db.read("build a report") as conn:
            reasons = conn.execute(
                "SELECT mailbox, reason, count(*) FROM decisions WHERE at >= ? GROUP BY mailbox, reason",
                (start,),
            ).fetchall()
            rules = conn.execute(
                "SELECT mailbox, rule, count(*), sum(reason = 'reply') FROM decisions"
                " WHERE at >= ? AND rule IS NOT NULL GROUP BY mailbox, rule",
                (start,),
            ).fetchall()
            states = conn.execute(
                "SELECT mailbox, rule, state, count(*) FROM outbox WHERE created_at >= ?"
                " GROUP BY mailbox, rule, state",
                (start,),
            ).fetchall()
        return build_report(since, reasons, rules, states)
