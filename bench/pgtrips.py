"""bench/pgtrips: round trips to PostgreSQL and store time per answered message, in one process.

    python -m bench.pgtrips [--messages N]

A private PostgreSQL cluster (fsync on, as bench.hosts) and the daemon's own parts: the
store with a lease fence (as with `state.url`), the absence cache, the pipeline, and the
outbox path that sends a reply (read the row, "send" to a no-op relay, mark it sent). Each
of N messages comes from a new sender and is answered. Every connection is traced by libpq;
a round trip is a frontend Sync or simple Query (the client then waits for the server).
Prints round trips per message by phase and the milliseconds per message, with SQLite's
for comparison (same parts, no trips). No IMAP, no SMTP: the store's share only.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

from awayd.adapters.store_absence import AbsenceCache
from awayd.adapters.store_pg_schema import PgDatabase
from awayd.config.load import parse_config
from awayd.outbox import Outbox
from awayd.pipeline import Incoming, Pipeline
from bench.phases import make_msg

CONFIG = """
mailboxes:
  - name: alice
    address: alice@example.org
    timezone: UTC
    smtp: {host: 127.0.0.1, port: 2525, security: none}
    max_replies: {per_hour: 100000, per_day: 100000}
    rules: [{name: away, text: "Away until Monday.", interval: 7d}]
"""


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **kw: None


class _Sender:
    def send(self, envelope_from: str, recipient: str, message: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class Trips:
    """Counts the round trips of every connection PgDatabase makes, by phase."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[Any] = []
        self.marks: list[int] = []

    @contextlib.contextmanager
    def traced(self) -> Iterator[None]:
        connect = PgDatabase._connect

        def traced_connect(db: PgDatabase) -> psycopg.Connection[Any]:
            conn = connect(db)
            out = (self.root / f"trace-{len(self.files)}").open("w+")
            self.files.append(out)
            conn.pgconn.trace(out.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            return conn

        PgDatabase._connect = traced_connect  # type: ignore[method-assign]
        try:
            yield
        finally:
            PgDatabase._connect = connect  # type: ignore[method-assign]

    def count(self) -> int:
        total = 0
        for out in self.files:
            out.flush()
            for line in Path(out.name).read_text(errors="replace").splitlines():
                parts = line.split("\t")
                if len(parts) > 2 and parts[0] == "F" and parts[2] in ("Sync", "Query"):
                    total += 1
        return total


def run(store: Any, n: int, trips: Trips | None) -> dict[str, float]:
    """Decide and record `n` messages one by one, then send the `n` replies as a burst
    through the outbox's relay (a no-op sender); trips and time per message of each phase."""
    config = parse_config(CONFIG)
    mailbox = config.mailboxes[0]
    now = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    clock = [now]
    outbox = Outbox(store=store, clock=lambda: clock[0], log=_Log(), make_sender=lambda s: _Sender())
    absences = AbsenceCache(store.db)
    pipeline = Pipeline(store=store, clock=lambda: clock[0], outbox=outbox, log=_Log(),
                        absences=absences.get)
    count = trips.count if trips else (lambda: 0)
    started, before = time.perf_counter(), count()
    for uid in range(1, n + 1):  # no route yet: nothing is sent while deciding
        clock[0] = now + timedelta(seconds=uid)
        pipeline.process(Incoming(mailbox, "INBOX", 1, uid, None,
                                  make_msg(f"s{uid}@example.net", "alice@example.org", envelope=True)))
    decided, recorded = time.perf_counter(), count()
    rows = store.due_outbox(clock[0] + timedelta(days=1), limit=n)
    assert len(rows) == n, f"{len(rows)} replies of {n}"
    outbox.configure(config.mailboxes)
    sending, before_send = time.perf_counter(), count()
    for row in rows:
        outbox.submit(row.id, mailbox.name)
    while not outbox.settled():
        time.sleep(0.001)
    sent, after = time.perf_counter(), count()
    outbox.close(5.0)
    return {"ms_decide": round(1000 * (decided - started) / n, 3),
            "ms_send": round(1000 * (sent - sending) / n, 3),
            "trips_decide": round((recorded - before) / n, 2),
            "trips_send": round((after - before_send) / n, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=300)
    args = ap.parse_args(argv)
    from awayd.adapters.leases_pg import Fence, LeaseTable  # noqa: PLC0415
    from awayd.adapters.store_pg import PostgresStore  # noqa: PLC0415
    from awayd.adapters.store_sqlite import SqliteStore  # noqa: PLC0415
    from tests.integration.postgres import Postgres  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="awayd-pgtrips-"))
    pg = Postgres.create(durable=True)
    try:
        pg.start()
        url = pg.new_database()
        def leased(store: PostgresStore) -> PostgresStore:
            fence = Fence("bench", margin=10.0)
            store.fence = fence  # as a daemon with `state.url` does
            for name, epoch in LeaseTable(store.pg, "bench", 3600.0).round(["alice"], {}).gained.items():
                fence.hold(name, epoch)
            return store

        trips = Trips(work)
        with trips.traced(), leased(PostgresStore.open(url)) as store:
            counted = run(store, args.messages, trips)
        with SqliteStore.open(work / "state.db") as sqlite:
            plain = run(sqlite, args.messages, None)
        with leased(PostgresStore.open(pg.new_database())) as store:  # the same, untraced
            untraced = run(store, args.messages, None)
    finally:
        pg.cleanup()
    print(f"postgresql: {counted['trips_decide']} round trips per message to decide and record,"
          f" {counted['trips_send']} to send; {untraced['ms_decide']} + {untraced['ms_send']} ms"
          " per message (decide and record + send)")
    print(f"sqlite: {plain['ms_decide']} + {plain['ms_send']} ms per message")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
