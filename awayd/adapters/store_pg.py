"""The state store on PostgreSQL (psycopg 3): SqliteStore's tables and semantics, for several hosts."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import psycopg

from awayd.adapters.leases_pg import Fence
from awayd.adapters.store_api import AlreadyRecorded, Fenced, NoStateYet, ReplyClaimed
from awayd.adapters.store_pg_history import DecisionHistory
from awayd.adapters.store_pg_record import queue_record, refusal
from awayd.adapters.store_pg_schema import (
    SCHEMA_VERSION,
    PgDatabase,
    PgStateDb,
    migrate,
    pg_error,
    read_version,
)
from awayd.adapters.store_rows import (
    Checkpoint,
    OutboxDraft,
    OutboxRow,
    PruneResult,
    Report,
    Reservation,
    Suppression,
    build_report,
    from_ts,
    normalize_entry,
    outbox_row,
    to_ts,
)
from awayd.errors import StateError

_MAX_ERROR_TEXT = 1000
#: The outbox id just inserted in this session (%s: whether there is one); a constant.
Conn = psycopg.Connection[Any]
_MARK_SENT = ("WITH o AS (UPDATE outbox SET state = 'sent', sent_at = %s, attempts = attempts + 1,"
              " last_error = NULL WHERE id = %s RETURNING id),"
              " h AS (UPDATE history SET state = 'sent' WHERE outbox_id IN (SELECT id FROM o))"
              " SELECT count(*) FROM o")


class PostgresStore:
    """Everything awayd remembers, in a PostgreSQL database that several hosts may share.

    Same contract as SqliteStore (see there); in addition a reply reservation is a claim on
    (mailbox, sender_key, rule_handle) that only one host can win within the rule's interval.
    """

    def __init__(self, db: PgDatabase) -> None:
        """Use PostgresStore.open()."""
        self._db = db
        self._state_db = PgStateDb(db)
        # Set by a daemon that shares the database with other hosts: writes and sends of a
        # mailbox then need its lease (leases_pg). None: this process owns every mailbox.
        self.fence: Fence | None = None

    @classmethod
    def open(cls, url: str, *, readonly: bool = False, connect_timeout: float = 5.0) -> PostgresStore:
        """Connect, and unless `readonly` create and migrate the schema.

        Raises:
            StateError: naming the server (never the password) and the cause: unreachable,
                refused, not awayd's, a newer schema, or (read-only) older.
            NoStateYet: read-only, and the schema was never made (the daemon never ran).
        """
        db = PgDatabase(url, readonly=readonly, connect_timeout=connect_timeout, wait_for_flush=False)
        try:
            if readonly:
                with db.read("read the schema version") as conn:
                    version = read_version(conn, db.path)
                if version == 0:  # as a SQLite file that does not exist: never made here
                    raise NoStateYet(f"state database {db.path}: no awayd tables yet (the daemon"
                                     " has not run on it)")
                if version < SCHEMA_VERSION:
                    raise StateError(f"state database {db.path}: schema version {version} is older"
                                     f" than this awayd's ({SCHEMA_VERSION}); run the daemon once"
                                     " to create or upgrade it")
            else:
                with db.write("migrate the schema") as conn:
                    migrate(conn, db.path)
        except BaseException:
            db.close()
            raise
        return cls(db)

    @property
    def path(self) -> str:
        """The server and database, without the password (for messages)."""
        return self._db.path

    @property
    def backend(self) -> str:
        return "postgresql"

    @property
    def db(self) -> PgStateDb:
        return self._state_db

    @property
    def pg(self) -> PgDatabase:
        """The connection itself, for the modules that speak PostgreSQL (leases, migration)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- checkpoints ----------------------------------------------------------------------

    def get_checkpoint(self, mailbox: str, folder: str) -> Checkpoint | None:
        with self._db.query("read a checkpoint") as conn:
            row = conn.execute("SELECT uidvalidity, last_uid FROM checkpoints WHERE mailbox = %s"
                               " AND folder = %s", (mailbox, folder)).fetchone()
        return None if row is None else Checkpoint(int(row[0]), int(row[1]))

    def set_checkpoint(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        with self._db.write("set a checkpoint") as conn:
            conn.execute(
                "INSERT INTO checkpoints (mailbox, folder, uidvalidity, last_uid) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (mailbox, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity,"
                " last_uid = excluded.last_uid", (mailbox, folder, uidvalidity, last_uid))

    # --- one message -----------------------------------------------------------------------

    def record(self, *, mailbox: str, folder: str, uidvalidity: int, uid: int, at: datetime,
               sender: str | None, reason: str, rule: str | None, message_id: str | None,
               reply: OutboxDraft | None = None, reservation: Reservation | None = None) -> int | None:
        """Record one decision in one transaction; see SqliteStore.record.

        Raises:
            ReplyClaimed: another decision (on any host) holds this sender's reply of the rule
                within its interval; nothing is written.
            StateError: already recorded, or the server failed; nothing is written.
        """
        if reservation is not None and reply is None:
            raise ValueError("a history reservation needs the reply it reserves for")
        when = to_ts(at)
        try:
            with self._db.batch("record a decision") as conn:
                outbox = queue_record(conn, self.fence, mailbox=mailbox, folder=folder,
                                      uidvalidity=uidvalidity, uid=uid, when=when, sender=sender,
                                      reason=reason, rule=rule, message_id=message_id, reply=reply,
                                      reservation=reservation)
            outbox_id = None
            if outbox is not None:  # read after the Sync: the results are in
                row = outbox.fetchone()
                assert row is not None
                outbox_id = int(row[0])
        except StateError as err:
            cause = err.__cause__
            if isinstance(cause, psycopg.errors.UniqueViolation):
                raise AlreadyRecorded(f"state database {self.path}: {mailbox} {folder} uid {uid}"
                                      f" (uidvalidity {uidvalidity}) was already recorded") from err
            refused = refusal(cause)
            if refused == "fenced":
                assert self.fence is not None
                self.fence.refused(mailbox, "record")
                raise Fenced(f"state database {self.path}: mailbox {mailbox} is not leased to"
                             " this host (any more): not recorded") from err
            if refused == "claimed":
                assert reservation is not None
                raise ReplyClaimed(f"state database {self.path}: {reservation.sender_key} was"
                                   f" already answered in mailbox {mailbox}") from err
            raise
        return outbox_id

    # --- outbox ----------------------------------------------------------------------------

    def due_outbox(self, now: datetime, limit: int = 100) -> list[OutboxRow]:
        owned = None if self.fence is None else list(self.fence.held())
        with self._db.query("read the outbox") as conn:
            rows = conn.execute(
                "SELECT id, mailbox, folder, uid, rule, message_id, recipient, envelope_from, bytes,"
                " state, attempts, next_try, created_at, last_error FROM outbox"
                " WHERE state = 'pending' AND next_try <= %s AND (%s::text[] IS NULL OR mailbox = ANY(%s))"
                " ORDER BY next_try, id LIMIT %s", (to_ts(now), owned, owned, limit)).fetchall()
        return [outbox_row(row) for row in rows]

    def get_outbox(self, outbox_id: int) -> OutboxRow | None:
        """The row, as SqliteStore.get_outbox; with a fence, a pending row of a mailbox whose
        lease this host does not hold (with the margin left) reads as None: the outbox reads
        the row just before sending it, so a host that lost the lease never sends it."""
        with self._db.query("read the outbox") as conn:
            row = conn.execute(*self._read_outbox(outbox_id)).fetchone()
        return self._leased_row(row)

    def _read_outbox(self, outbox_id: int) -> tuple[str, tuple[Any, ...]]:
        """The row and, with a fence, its lease epoch when ours (the check in the same trip)."""
        lease, params = ("NULL", ()) if self.fence is None else self.fence.epoch_sql("outbox.mailbox")
        return ("SELECT id, mailbox, folder, uid, rule, message_id, recipient, envelope_from, bytes,"  # noqa: S608 (constants)
                f" state, attempts, next_try, created_at, last_error, {lease} FROM outbox WHERE id = %s",
                (*params, outbox_id))

    def _leased_row(self, row: Any) -> OutboxRow | None:
        if row is None:
            return None
        if row[9] == "pending" and self.fence is not None:
            held = self.fence.epoch(str(row[1]))
            if held is None or row[14] != held:
                self.fence.refused(str(row[1]), "send")
                return None
        return outbox_row(row[:14])

    def pending_count(self) -> int:
        with self._db.query("count the outbox") as conn:
            row = conn.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()
        return int(row[0]) if row else 0

    def mark_sent(self, outbox_id: int, now: datetime) -> None:
        """See SqliteStore.mark_sent; one statement (atomic on its own), one round trip."""
        with self._db.query("mark a reply sent") as conn:
            row = conn.execute(_MARK_SENT, (to_ts(now), outbox_id)).fetchone()
        if not row or not row[0]:
            raise StateError(f"state database {self.path}: no outbox row {outbox_id}")

    def mark_sent_then_read(self, outbox_id: int, now: datetime, next_id: int) -> OutboxRow | None:
        """mark_sent(outbox_id), and get_outbox(next_id) in the same round trip: the relay
        reads the reply it sends next while it marks the one it just sent."""
        with self._db.batch("mark a reply sent") as conn:
            marked = conn.execute(_MARK_SENT, (to_ts(now), outbox_id))
            following = conn.execute(*self._read_outbox(next_id))
        row = marked.fetchone()
        if not row or not row[0]:
            raise StateError(f"state database {self.path}: no outbox row {outbox_id}")
        return self._leased_row(following.fetchone())

    def mark_retry(self, outbox_id: int, next_try: datetime, error: str) -> None:
        with self._db.write("reschedule a reply") as conn:
            self._update_outbox(conn, outbox_id,
                                "UPDATE outbox SET attempts = attempts + 1, next_try = %s, last_error = %s"
                                " WHERE id = %s AND state = 'pending'",
                                (to_ts(next_try), error[:_MAX_ERROR_TEXT], outbox_id))

    def mark_failed(self, outbox_id: int, error: str) -> None:
        with self._db.write("mark a reply failed") as conn:
            self._update_outbox(conn, outbox_id,
                                "UPDATE outbox SET state = 'failed', attempts = attempts + 1,"
                                " last_error = %s WHERE id = %s AND state = 'pending'",
                                (error[:_MAX_ERROR_TEXT], outbox_id))
            conn.execute("DELETE FROM history WHERE outbox_id = %s AND state = 'reserved'",
                         (outbox_id,))

    def drop_expired(self, now: datetime, max_delay: timedelta) -> list[OutboxRow]:
        cutoff = to_ts(now) - max_delay.total_seconds()
        owned = None if self.fence is None else list(self.fence.held())
        with self._db.write("drop expired replies") as conn:
            rows = conn.execute(
                "UPDATE outbox SET state = 'dropped' WHERE state = 'pending' AND created_at < %s"
                " AND (%s::text[] IS NULL OR mailbox = ANY(%s))"
                " RETURNING id, mailbox, folder, uid, rule, message_id, recipient, envelope_from,"
                " bytes, state, attempts, next_try, created_at, last_error",
                (cutoff, owned, owned)).fetchall()
            ids = [int(row[0]) for row in rows]
            if ids:
                conn.execute("DELETE FROM history WHERE outbox_id = ANY(%s) AND state = 'reserved'",
                             (ids,))
        return sorted((outbox_row(row) for row in rows), key=lambda r: r.id)

    def _update_outbox(self, conn: Conn, outbox_id: int, sql: str, params: tuple[Any, ...]) -> None:
        if conn.execute(sql, params).rowcount:  # constant SQL
            return
        if conn.execute("SELECT 1 FROM outbox WHERE id = %s", (outbox_id,)).fetchone() is None:
            raise StateError(f"state database {self.path}: no outbox row {outbox_id}")

    # --- HistoryView -----------------------------------------------------------------------

    def decision_history(self, mailbox: str, now: datetime) -> DecisionHistory:
        """The history of one decision, read in one round trip (see DecisionHistory)."""
        return DecisionHistory(self._db, self, mailbox, now)

    def replied_since(self, mailbox: str, sender_key: str, rule_handle: str, since: datetime) -> bool:
        with self._db.query("read the history") as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM history WHERE mailbox = %s AND sender_key = %s"
                " AND rule_handle = %s AND replied_at >= %s)",
                (mailbox, sender_key, rule_handle, to_ts(since))).fetchone()
        return bool(row and row[0])

    def replies_since(self, mailbox: str, since: datetime) -> int:
        with self._db.query("read the history") as conn:
            row = conn.execute("SELECT count(*) FROM history WHERE mailbox = %s AND replied_at >= %s",
                               (mailbox, to_ts(since))).fetchone()
        return int(row[0]) if row else 0

    def is_suppressed(self, mailbox: str, address: str) -> bool:
        address = address.strip().lower()
        domain = "@" + address.rpartition("@")[2]
        with self._db.query("read the suppression list") as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM suppressions WHERE mailbox IN (%s, '*')"
                " AND entry IN (%s, %s))", (mailbox, address, domain)).fetchone()
        return bool(row and row[0])

    # --- maintenance -----------------------------------------------------------------------

    def check_writable(self) -> None:
        with self._db.write("check that the state can be written") as conn:
            conn.execute("UPDATE schema_version SET version = version")

    def checkpoint_wal(self) -> None:
        """Nothing to do: the server manages its own write-ahead log."""

    def prune(self, now: datetime, keep_history: timedelta, keep_decisions: timedelta) -> PruneResult:
        history_cutoff = to_ts(now) - keep_history.total_seconds()
        decisions_cutoff = to_ts(now) - keep_decisions.total_seconds()
        with self._db.write("prune") as conn:
            history = conn.execute(
                "DELETE FROM history WHERE replied_at < %s AND (outbox_id IS NULL OR outbox_id"
                " NOT IN (SELECT id FROM outbox WHERE state = 'pending'))", (history_cutoff,)).rowcount
            decisions = conn.execute("DELETE FROM decisions WHERE at < %s",
                                     (decisions_cutoff,)).rowcount
            outbox = conn.execute("DELETE FROM outbox WHERE state != 'pending' AND created_at < %s",
                                  (decisions_cutoff,)).rowcount
        return PruneResult(history=history, decisions=decisions, outbox=outbox)

    def forget(self, mailbox: str, address: str) -> int:
        with self._db.write("forget a sender") as conn:
            return conn.execute("DELETE FROM history WHERE mailbox = %s AND lower(sender_key) = %s",
                                (mailbox, address.strip().lower())).rowcount

    def suppress_add(self, entry: str, *, now: datetime, mailbox: str = "*") -> bool:
        normal = normalize_entry(entry)
        with self._db.write("add a suppression") as conn:
            return bool(conn.execute(
                "INSERT INTO suppressions (mailbox, entry, added_at) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING", (mailbox, normal, to_ts(now))).rowcount)

    def suppress_remove(self, entry: str, mailbox: str = "*") -> bool:
        normal = normalize_entry(entry)
        with self._db.write("remove a suppression") as conn:
            return bool(conn.execute("DELETE FROM suppressions WHERE mailbox = %s AND entry = %s",
                                     (mailbox, normal)).rowcount)

    def suppress_list(self) -> list[Suppression]:
        with self._db.query("list suppressions") as conn:
            rows = conn.execute("SELECT mailbox, entry, added_at FROM suppressions"
                                " ORDER BY mailbox, entry").fetchall()
        return [Suppression(str(m), str(e), from_ts(a)) for m, e, a in rows]

    def report(self, since: datetime) -> Report:
        start = to_ts(since)
        with self._db.read("build a report") as conn:
            reasons = conn.execute("SELECT mailbox, reason, count(*) FROM decisions WHERE at >= %s"
                                   " GROUP BY mailbox, reason", (start,)).fetchall()
            rules = conn.execute(
                "SELECT mailbox, rule, count(*), count(*) FILTER (WHERE reason = 'reply')"
                " FROM decisions WHERE at >= %s AND rule IS NOT NULL GROUP BY mailbox, rule",
                (start,)).fetchall()
            states = conn.execute("SELECT mailbox, rule, state, count(*) FROM outbox WHERE"
                                  " created_at >= %s GROUP BY mailbox, rule, state", (start,)).fetchall()
        return build_report(since, reasons, rules, states)


__all__ = ["Fenced", "PostgresStore", "pg_error"]
