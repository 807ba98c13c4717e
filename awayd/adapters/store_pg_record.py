"""The statements of one recorded decision, queued on a pipeline: one round trip, one transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from awayd.adapters.leases_pg import Fence
from awayd.adapters.store_pg_schema import REFUSED_STATE
from awayd.adapters.store_rows import OutboxDraft, Reservation

# ruff: noqa: S608 -- the only text put into SQL is constants; values are parameters
#: The outbox id just inserted in this session (%s: whether there is one); a constant.
_ID = "CASE WHEN %s THEN currval(pg_get_serial_sequence('outbox', 'id')) END"
Conn = psycopg.Connection[Any]


def queue_record(conn: Conn, fence: Fence | None, *, mailbox: str, folder: str, uidvalidity: int,
                 uid: int, when: float, sender: str | None, reason: str, rule: str | None,
                 message_id: str | None, reply: OutboxDraft | None,
                 reservation: Reservation | None) -> psycopg.Cursor[Any] | None:
    """Queue the record on `conn` (in pipeline mode, see PgDatabase.batch); returns the cursor
    of the outbox row's id when there is a reply (read it after the block)."""
    # One round trip: every statement goes out at once and the pipeline's one Sync
    # ends them as one transaction (the protocol's implicit transaction). A check
    # that fails (the lease, the claim) raises in SQL: the server skips the rest
    # and rolls all of it back. The outbox id is the session's currval.
    if fence is not None:
        _fenced(conn, fence, mailbox)
    outbox = None
    if reply is not None:
        outbox = conn.execute(
            "INSERT INTO outbox (mailbox, folder, uid, rule, message_id, recipient,"
            " envelope_from, bytes, next_try, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (mailbox, folder, uid, rule, reply.message_id, reply.recipient,
             reply.envelope_from, reply.message, when, when))
    conn.execute(
        "INSERT INTO decisions (mailbox, folder, uidvalidity, uid, at, sender, reason,"
        f" rule, message_id, outbox_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, {_ID})",
        (mailbox, folder, uidvalidity, uid, when, sender, reason, rule, message_id,
         reply is not None))
    if reservation is not None and reply is not None:
        _claim(conn, mailbox, reservation, when)
        conn.execute(
            "INSERT INTO history (mailbox, sender_key, rule_handle, replied_at, state,"
            f" outbox_id) VALUES (%s, %s, %s, %s, 'reserved', {_ID})",
            (mailbox, reservation.sender_key, reservation.rule_handle, when, True))
    conn.execute(
        "INSERT INTO checkpoints (mailbox, folder, uidvalidity, last_uid)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (mailbox, folder) DO UPDATE"
        " SET last_uid = GREATEST(checkpoints.last_uid, excluded.last_uid)"
        " WHERE checkpoints.uidvalidity = excluded.uidvalidity",
        (mailbox, folder, uidvalidity, uid))
    return outbox


def _fenced(conn: Conn, fence: Fence, mailbox: str) -> None:
    """Queue the lease check: it fails the transaction unless the lease is ours (FOR SHARE:
    a takeover waits for our commit)."""
    check, params = fence.check(mailbox, lock=True)
    conn.execute(f"SELECT awayd_refuse('fenced') WHERE NOT EXISTS ({check})", params)


def _claim(conn: Conn, mailbox: str, reservation: Reservation, when: float) -> None:
    """Queue the claim: it fails the transaction when another decision holds it."""
    if reservation.interval <= timedelta(0):
        return  # a rule without an interval answers every message
    # A concurrent claim on the same key waits for the other transaction, then sees its
    # row: exactly one of two hosts wins, whatever the timing.
    conn.execute(
        "WITH won AS (INSERT INTO reply_claims (mailbox, sender_key, rule_handle, replied_at,"
        f" outbox_id) VALUES (%s, %s, %s, %s, {_ID}) ON CONFLICT (mailbox, sender_key, rule_handle)"
        " DO UPDATE SET replied_at = excluded.replied_at, outbox_id = excluded.outbox_id"
        " WHERE reply_claims.replied_at < excluded.replied_at - %s RETURNING 1)"
        " SELECT awayd_refuse('claimed') WHERE NOT EXISTS (SELECT 1 FROM won)",
        (mailbox, reservation.sender_key, reservation.rule_handle, when, True,
         reservation.interval.total_seconds()))


def refusal(err: BaseException | None) -> str | None:
    """What awayd_refuse() refused ("fenced", "claimed"), or None for any other error."""
    if isinstance(err, psycopg.Error) and err.sqlstate == REFUSED_STATE:
        return (err.diag.message_primary or "").removeprefix("awayd: ")
    return None
