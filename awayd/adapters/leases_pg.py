"""Mailbox leases in PostgreSQL: which host works on which mailbox, and the fence on every write.

A lease is a row (mailbox, owner, expires_at, epoch). Times are the server's clock
(clock_timestamp()), so hosts' clocks never matter. A host claims unowned or expired leases
with `FOR UPDATE SKIP LOCKED`, up to its fair share (mailboxes / live hosts, rounded up), and
bumps the epoch on each takeover; it renews what it holds well before expiry. The fence: a
decision is only recorded, and a reply only handed to SMTP, while this host holds the lease
with the same epoch and at least `margin` seconds left, checked inside the transaction
(`FOR SHARE`, so a takeover waits for that commit). The new owner can only claim after
expiry, so the old one has stopped writing `margin` seconds before anyone else starts.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from awayd.adapters.store_pg_schema import PgDatabase

# ruff: noqa: S608 -- the only text put into SQL is this constant; values are parameters
_NOW = "extract(epoch FROM clock_timestamp())"


class Fence:
    """The leases this host holds (mailbox -> epoch), read by the store on every write."""

    def __init__(self, host: str, margin: float,
                 on_refused: Callable[[str, str], None] | None = None) -> None:
        self.host = host
        self.margin = margin
        self.on_refused = on_refused
        self._lock = threading.Lock()
        self._epochs: dict[str, int] = {}

    def hold(self, mailbox: str, epoch: int) -> None:
        with self._lock:
            self._epochs[mailbox] = epoch

    def drop(self, mailbox: str) -> None:
        with self._lock:
            self._epochs.pop(mailbox, None)

    def epoch(self, mailbox: str) -> int | None:
        with self._lock:
            return self._epochs.get(mailbox)

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._epochs)

    def check(self, mailbox: str, *, lock: bool) -> tuple[str, tuple[Any, ...]]:
        """The lease check as SQL and parameters: a row when the lease is ours, same epoch,
        `margin` seconds left (`lock`: FOR SHARE, so a takeover waits for our commit)."""
        return ("SELECT 1 FROM leases WHERE mailbox = %s AND owner = %s AND epoch = %s"
                f" AND expires_at > {_NOW} + %s" + (" FOR SHARE" if lock else ""),
                (mailbox, self.host, self.epoch(mailbox), self.margin))

    def epoch_sql(self, mailbox_column: str) -> tuple[str, tuple[Any, ...]]:
        """A scalar subquery and its parameters: the epoch of the lease of the mailbox in
        `mailbox_column` when it is ours with `margin` seconds left, else NULL; compare it
        with epoch() (no lock: for a read such as the outbox's before a send)."""
        return (f"(SELECT epoch FROM leases WHERE mailbox = {mailbox_column} AND owner = %s"
                f" AND expires_at > {_NOW} + %s)", (self.host, self.margin))

    def query(self, conn: psycopg.Connection[Any], mailbox: str, *, lock: bool) -> psycopg.Cursor[Any]:
        """The lease check (see check) as a query."""
        return conn.execute(*self.check(mailbox, lock=lock))

    def holds(self, conn: psycopg.Connection[Any], mailbox: str, what: str, *, lock: bool) -> bool:
        """True when the lease is ours (see query); else report the refusal."""
        held = self.epoch(mailbox) is not None and self.query(conn, mailbox, lock=lock).fetchone() is not None
        if not held:
            self.refused(mailbox, what)
        return held

    def refused(self, mailbox: str, what: str) -> None:
        if self.on_refused is not None:
            self.on_refused(mailbox, what)


@dataclass(frozen=True)
class Round:
    """What one lease round changed for this host."""

    kept: dict[str, int] = field(default_factory=dict)
    gained: dict[str, int] = field(default_factory=dict)
    lost: tuple[str, ...] = ()
    excess: tuple[str, ...] = ()  # held beyond the fair share: to stop, then release
    hosts: int = 1


class LeaseTable:
    """The SQL of the leases; every method is one transaction."""

    def __init__(self, db: PgDatabase, host: str, period: float) -> None:
        self.db = db
        self.host = host
        self.period = period

    def round(self, mailboxes: Iterable[str], held: dict[str, int]) -> Round:
        """Renew what we hold, count live hosts, claim up to our fair share of the rest."""
        names = sorted(set(mailboxes))
        with self.db.write("renew the mailbox leases") as conn:
            conn.execute(
                f"INSERT INTO lease_hosts (host, seen_at) VALUES (%s, {_NOW}) ON CONFLICT (host)"
                " DO UPDATE SET seen_at = excluded.seen_at", (self.host,))
            # a host unseen for ten periods is gone for good
            conn.execute(f"DELETE FROM lease_hosts WHERE seen_at < {_NOW} - %s", (10 * self.period,))
            conn.execute("INSERT INTO leases (mailbox) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                         (names,))
            mine = [m for m in held if m in names]
            renewed = dict(conn.execute(
                f"UPDATE leases SET expires_at = {_NOW} + %s WHERE owner = %s AND expires_at > {_NOW}"
                " AND mailbox = ANY(%s) RETURNING mailbox, epoch",
                (self.period, self.host, mine)).fetchall())
            kept = {m: e for m, e in renewed.items() if held.get(m) == e}
            lost = tuple(sorted(set(held) - set(kept)))
            # live: renewed within half a period (rounds run far more often than that)
            row = conn.execute(f"SELECT count(*) FROM lease_hosts WHERE seen_at > {_NOW} - %s",
                               (self.period / 2,)).fetchone()
            hosts = max(1, int(row[0]) if row else 1)
            share = math.ceil(len(names) / hosts)
            gained: dict[str, int] = {}
            if len(kept) < share:
                gained = dict(conn.execute(
                    "WITH free AS (SELECT mailbox FROM leases WHERE mailbox = ANY(%s)"
                    # ours but let go (the database was out of reach): a new epoch, as anyone's
                    f" AND (owner IS NULL OR expires_at <= {_NOW} OR owner = %s) AND NOT (mailbox = ANY(%s))"
                    " ORDER BY mailbox LIMIT %s FOR UPDATE SKIP LOCKED)"
                    f" UPDATE leases SET owner = %s, epoch = leases.epoch + 1, expires_at = {_NOW} + %s"
                    " FROM free WHERE leases.mailbox = free.mailbox RETURNING leases.mailbox, leases.epoch",
                    (names, self.host, list(kept), share - len(kept), self.host, self.period)).fetchall())
            excess = tuple(sorted(kept)[share:]) if len(kept) > share else ()
        return Round(kept, gained, lost, excess, hosts)

    def release(self, leases: dict[str, int]) -> None:
        """Give leases up at once (their workers are stopped): the next claimer need not wait."""
        with self.db.write("release mailbox leases") as conn:
            for mailbox, epoch in leases.items():
                conn.execute("UPDATE leases SET owner = NULL, expires_at = 0 WHERE mailbox = %s"
                             " AND owner = %s AND epoch = %s", (mailbox, self.host, epoch))

    def leave(self) -> None:
        """At a clean stop: release everything and stop counting as a live host."""
        with self.db.write("release mailbox leases") as conn:
            conn.execute("UPDATE leases SET owner = NULL, expires_at = 0 WHERE owner = %s", (self.host,))
            conn.execute("DELETE FROM lease_hosts WHERE host = %s", (self.host,))
