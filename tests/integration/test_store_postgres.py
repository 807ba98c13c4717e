"""The PostgreSQL store against a real server: schema, claims across connections, outages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from awayd.adapters.store_api import AlreadyRecorded, NoStateYet, ReplyClaimed
from awayd.adapters.store_pg import PostgresStore
from awayd.adapters.store_pg_schema import SCHEMA_VERSION
from awayd.adapters.store_sqlite import OutboxDraft, Reservation, SqliteStore
from awayd.errors import StateError
from tests.integration.postgres import Postgres

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def record(store: PostgresStore | SqliteStore, uid: int, *, at: datetime = T0,
           sender: str = "bob@example.net", interval: timedelta = WEEK) -> int | None:
    return store.record(
        mailbox="alice", folder="INBOX", uidvalidity=7, uid=uid, at=at, sender=sender,
        reason="reply", rule="holidays", message_id=f"<m{uid}@example.net>",
        reply=OutboxDraft(f"<r{uid}@example.org>", sender, "", b"Subject: x\r\n\r\nAway.\r\n"),
        reservation=Reservation(sender, "holidays#1", interval))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PostgresStore | SqliteStore]:
    if request.param == "sqlite":
        with SqliteStore.open(tmp_path / "state.db") as sqlite:
            yield sqlite
        return
    with PostgresStore.open(request.getfixturevalue("pg_url")) as pg:
        yield pg


# --- once per sender per interval: a key, not a read ------------------------------------------

def test_a_second_reply_within_the_interval_is_refused_and_writes_nothing(
        store: PostgresStore | SqliteStore) -> None:
    assert record(store, 1) is not None
    with pytest.raises(ReplyClaimed):
        record(store, 2, at=T0 + timedelta(days=6))
    assert store.pending_count() == 1
    assert store.get_checkpoint("alice", "INBOX").last_uid == 1  # type: ignore[union-attr]
    assert record(store, 3, sender="carol@example.net") is not None  # another sender


def test_a_reply_after_the_interval_wins_again(store: PostgresStore | SqliteStore) -> None:
    record(store, 1)
    assert record(store, 2, at=T0 + WEEK + timedelta(seconds=1)) is not None
    assert store.replies_since("alice", T0) == 2


def test_a_failed_reply_releases_its_claim(store: PostgresStore | SqliteStore) -> None:
    outbox_id = record(store, 1)
    assert outbox_id is not None
    store.mark_failed(outbox_id, "550 no such user")
    assert record(store, 2, at=T0 + timedelta(hours=1)) is not None


def test_forget_releases_the_claim(store: PostgresStore | SqliteStore) -> None:
    record(store, 1)
    assert store.forget("alice", "BOB@example.net") == 1
    assert record(store, 2, at=T0 + timedelta(hours=1)) is not None


def test_a_rule_without_interval_claims_nothing(store: PostgresStore | SqliteStore) -> None:
    record(store, 1, interval=timedelta(0))
    assert record(store, 2, interval=timedelta(0)) is not None


def test_two_hosts_racing_for_one_sender_answer_once(pg_url: str) -> None:
    """Eight connections record the same sender at once: one reply, seven refusals."""
    PostgresStore.open(pg_url).close()
    stores = [PostgresStore.open(pg_url) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    won: list[int] = []
    lost: list[int] = []

    def host(n: int) -> None:
        barrier.wait()
        try:
            record(stores[n], 100 + n)
            won.append(n)
        except ReplyClaimed:
            lost.append(n)

    threads = [threading.Thread(target=host, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert (len(won), len(lost)) == (1, 7)
        assert stores[0].pending_count() == 1
        assert stores[0].replies_since("alice", T0) == 1
    finally:
        for s in stores:
            s.close()


# --- schema ---------------------------------------------------------------------------------

def test_the_schema_is_made_once_and_versioned(pg_url: str) -> None:
    with PostgresStore.open(pg_url) as store:
        record(store, 1)
    with PostgresStore.open(pg_url) as store:  # a second start migrates nothing, keeps data
        assert store.pending_count() == 1
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT version FROM schema_version").fetchone()
    assert row == (SCHEMA_VERSION,)


def test_readonly_tells_a_database_awayd_never_used_and_creates_nothing(pg_url: str) -> None:
    with pytest.raises(NoStateYet, match="no awayd tables yet"):
        PostgresStore.open(pg_url, readonly=True)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_a_database_of_another_program_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(StateError, match="not an awayd database"):
        PostgresStore.open(pg_url)


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    PostgresStore.open(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StateError, match="newer than this awayd"):
        PostgresStore.open(pg_url)


def test_the_password_never_appears_in_errors(postgres: Postgres) -> None:
    url = f"postgresql://awayd:s3cret@127.0.0.1:{postgres.port}/no_such_db"
    with pytest.raises(StateError) as caught:
        PostgresStore.open(url)
    assert "s3cret" not in str(caught.value)
    assert "awayd:***@127.0.0.1" in str(caught.value)


# --- the server going away ------------------------------------------------------------------

def test_a_server_down_is_a_transient_error_and_the_store_reconnects(
        postgres: Postgres, pg_url: str) -> None:
    with PostgresStore.open(pg_url) as store:
        record(store, 1)
        postgres.stop()
        try:
            with pytest.raises(StateError) as caught:
                record(store, 2, sender="carol@example.net")
            assert caught.value.transient
            with pytest.raises(StateError):
                store.pending_count()
        finally:
            postgres.start()
        assert record(store, 3, sender="carol@example.net") is not None
        assert store.pending_count() == 2


def test_a_message_recorded_twice_is_told_apart_from_a_store_failure(
        store: PostgresStore | SqliteStore) -> None:
    record(store, 1)
    with pytest.raises(AlreadyRecorded, match=r"uid 1 .* already recorded"):
        record(store, 1, sender="carol@example.net")
    assert store.pending_count() == 1  # nothing of the second one written
    record(store, 2, sender="carol@example.net")  # the connection is fine afterwards
