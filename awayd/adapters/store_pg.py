"""The state store on PostgreSQL (psycopg 3): SqliteStore's tables and semantics, for several hosts."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import psycopg

from awayd.adapters.leases_pg import Fence
from awayd.adapters.store_api import AlreadyRecorded, Fenced, NoStateYet, ReplyClaimed
from awayd.adapters.store_pg_history import DecisionHistory
from awayd.adapters.store_pg_schema import (
    REFUSED_STATE,
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
_ID = "CASE WHEN %s THEN currval(pg_get_serial_sequence('outbox', 'id')) END"
Conn = psycopg.Connection[Any]


def _refusal(err: BaseException | None) -> str | None:
    """What awayd_refuse() refused ("fenced", "claimed"), or None for any other error."""
    if isinstance(err, psycopg.Error) and err.sqlstate == REFUSED_STATE:
        return (err.diag.message_primary or "").removeprefix("awayd: ")
    return None


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
                # One round trip: every statement goes out at once and the pipeline's one Sync
                # ends them as one transaction (the protocol's implicit transaction). A check
                # that fails (the lease, the claim) raises in SQL: the server skips the rest
                # and rolls all of it back. The outbox id is the session's currval.
                if self.fence is not None:
                    self._fenced(conn, mailbox)
                outbox = None
                if reply is not None:
                    outbox = conn.execute(
                        "INSERT INTO outbox (mailbox, folder, uid, rule, message_id, recipient,"
                        " envelope_from, bytes, next_try, created_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                        (mailbox, folder, uid, rule, reply.message_id, reply.recipient,
                         reply.envelope_from, reply.message, when, when))
                conn.execute(
                    "INSERT INTO decisions (mailbox, folder, uidvalidity, uid, at, sender, reason,"  # noqa: S608 (a constant)
                    f" rule, message_id, outbox_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, {_ID})",
                    (mailbox, folder, uidvalidity, uid, when, sender, reason, rule, message_id,
                     reply is not None))
                if reservation is not None and reply is not None:
                    self._claim(conn, mailbox, reservation, when)
                    conn.execute(
                        "INSERT INTO history (mailbox, sender_key, rule_handle, replied_at, state,"  # noqa: S608 (a constant)
                        f" outbox_id) VALUES (%s, %s, %s, %s, 'reserved', {_ID})",
                        (mailbox, reservation.sender_key, reservation.rule_handle, when, True))
                conn.execute(
                    "INSERT INTO checkpoints (mailbox, folder, uidvalidity, last_uid)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (mailbox, folder) DO UPDATE"
                    " SET last_uid = GREATEST(checkpoints.last_uid, excluded.last_uid)"
                    " WHERE checkpoints.uidvalidity = excluded.uidvalidity",
                    (mailbox, folder, uidvalidity, uid))
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
            refused = _refusal(cause)
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

    def _fenced(self, conn: Conn, mailbox: str) -> None:
        """Queue the lease check: it fails the transaction unless the lease is ours (FOR SHARE:
        a takeover waits for our commit)."""
        assert self.fence is not None
        check, params = self.fence.check(mailbox, lock=True)
        conn.execute(f"SELECT awayd_refuse('fenced') WHERE NOT EXISTS ({check})", params)

    def _claim(self, conn: Conn, mailbox: str, reservation: Reservation, when: float) -> None:
        """Queue the claim: it fails the transaction when another decision holds it."""
        if reservation.interval <= timedelta(0):
            return  # a rule without an interval answers every message
        # A concurrent claim on the same key waits for the other transaction, then sees its
        # row: exactly one of two hosts wins, whatever the timing.
        conn.execute(
            "WITH won AS (INSERT INTO reply_claims (mailbox, sender_key, rule_handle, replied_at,"  # noqa: S608 (a constant)
            f" outbox_id) VALUES (%s, %s, %s, %s, {_ID}) ON CONFLICT (mailbox, sender_key, rule_handle)"
            " DO UPDATE SET replied_at = excluded.replied_at, outbox_id = excluded.outbox_id"
            " WHERE reply_claims.replied_at < excluded.replied_at - %s RETURNING 1)"
            " SELECT awayd_refuse('claimed') WHERE NOT EXISTS (SELECT 1 FROM won)",
            (mailbox, reservation.sender_key, reservation.rule_handle, when, True,
             reservation.interval.total_seconds()))

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
        lease, params = ("NULL", ()) if self.fence is None else self.fence.epoch_sql("outbox.mailbox")
        with self._db.query("read the outbox") as conn:
            row = conn.execute(
                "SELECT id, mailbox, folder, uid, rule, message_id, recipient, envelope_from, bytes,"  # noqa: S608 (constants)
                f" state, attempts, next_try, created_at, last_error, {lease} FROM outbox WHERE id = %s",
                (*params, outbox_id)).fetchone()
        if row is None:
            return None
        if row[9] == "pending" and self.fence is not None:
            held = self.fence.epoch(str(row[1]))
            if held is None or row[14] != held:  # the lease check in the same round trip
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
            row = conn.execute(
                "WITH o AS (UPDATE outbox SET state = 'sent', sent_at = %s, attempts = attempts + 1,"
                " last_error = NULL WHERE id = %s RETURNING id),"
                " h AS (UPDATE history SET state = 'sent' WHERE outbox_id IN (SELECT id FROM o))"
                " SELECT count(*) FROM o", (to_ts(now), outbox_id)).fetchone()
        if not row or not row[0]:
            raise StateError(f"state database {self.path}: no outbox row {outbox_id}")

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
