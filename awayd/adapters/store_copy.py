"""`awayd state migrate`: copy a SQLite state, row for row, into a PostgreSQL database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from awayd.adapters.state_lock import StateLock
from awayd.adapters.store_pg import PostgresStore
from awayd.adapters.store_sqlite import SqliteStore
from awayd.errors import StateError

#: Every table of the state and the columns copied, in an order that keeps references valid.
TABLES: tuple[tuple[str, str], ...] = (
    ("checkpoints", "mailbox, folder, uidvalidity, last_uid"),
    ("outbox", "id, mailbox, folder, uid, rule, message_id, recipient, envelope_from, bytes, state,"
               " attempts, next_try, created_at, sent_at, last_error"),
    ("history", "id, mailbox, sender_key, rule_handle, replied_at, state, outbox_id"),
    ("decisions", "id, mailbox, folder, uidvalidity, uid, at, sender, reason, rule, message_id,"
                  " outbox_id"),
    ("suppressions", "mailbox, entry, added_at"),
    ("absences", "mailbox, starts, until, text, reply_to, created_at"),
)
_WITH_IDS = ("outbox", "history", "decisions")


@dataclass(frozen=True)
class Copied:
    """Rows copied per table, in TABLES order."""

    counts: tuple[tuple[str, int], ...]

    def total(self) -> int:
        return sum(n for _table, n in self.counts)


def copy_state(source: Path, url: str, *, force: bool = False) -> Copied:
    """Copy the SQLite state at `source` into the PostgreSQL database at `url`, in one transaction.

    The source is locked like a running daemon would lock it, so no daemon can write to it
    meanwhile (stop it first). A target that already holds any state is refused unless
    `force`, which empties it first. Pending replies are copied pending, with their bytes and
    Message-IDs, so whichever host drains the outbox sends exactly what was queued.

    Raises:
        StateError: the source is missing, in use or not current; the target is unreachable,
            not awayd's, or (without `force`) not empty. Nothing is written then.
    """
    if not source.exists():
        raise StateError(f"state database {source}: no such file, nothing to migrate")
    lock = StateLock.acquire(source)
    try:
        with SqliteStore.open(source, readonly=True) as sqlite, PostgresStore.open(url) as pg:
            with sqlite.db.read("read the state to migrate") as src, \
                    pg.pg.write("copy the state") as dst:
                dst.execute("SET LOCAL synchronous_commit = on")  # a migration is not redone
                _make_room(dst, pg.path, force=force)
                counts = [(table, _copy(src, dst, table, columns)) for table, columns in TABLES]
                _after_copy(dst)
            return Copied(tuple(counts))
    finally:
        lock.release()


def _make_room(dst: psycopg.Connection[Any], where: str, *, force: bool) -> None:
    held = [table for table, _columns in TABLES
            if dst.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone() != (False,)]  # noqa: S608 (constant names)
    if held and not force:
        raise StateError(f"state database {where}: already holds state ({', '.join(held)});"
                         " migrate into an empty database, or give --force to replace it")
    if held:
        names = ", ".join(table for table, _columns in TABLES)
        dst.execute(f"TRUNCATE {names}, reply_claims RESTART IDENTITY")


def _copy(src: Any, dst: psycopg.Connection[Any], table: str, columns: str) -> int:
    rows = src.execute(f"SELECT {columns} FROM {table}").fetchall()  # noqa: S608 (constant names)
    if not rows:
        return 0
    marks = ", ".join(["%s"] * len(columns.split(",")))
    with dst.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608
                        [tuple(row) for row in rows])
    return len(rows)


def _after_copy(dst: psycopg.Connection[Any]) -> None:
    for table in _WITH_IDS:  # new rows continue after the copied ids
        dst.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608
                    f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
    # The claims ("once per interval") are the newest reply per sender and rule.
    dst.execute(
        "INSERT INTO reply_claims (mailbox, sender_key, rule_handle, replied_at, outbox_id)"
        " SELECT DISTINCT ON (mailbox, sender_key, rule_handle) mailbox, sender_key, rule_handle,"
        " replied_at, outbox_id FROM history WHERE outbox_id IS NOT NULL"
        " ORDER BY mailbox, sender_key, rule_handle, replied_at DESC")
