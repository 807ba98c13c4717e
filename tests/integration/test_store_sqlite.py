"""Tests for awayd.adapters.store_sqlite on real SQLite files, including killed writers."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from awayd.adapters import store_schema
from awayd.adapters.store_schema import SCHEMA_VERSION
from awayd.adapters.store_sqlite import OutboxDraft, Reservation, SqliteStore
from awayd.core.history import HistoryView
from awayd.errors import StateError

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[SqliteStore]:
    """The store on each backend; tests that look at the SQLite file run on SQLite only."""
    if request.param == "sqlite":
        with SqliteStore.open(request.getfixturevalue("db_path")) as opened:
            yield opened
        return
    if "db_path" in request.fixturenames:
        pytest.skip("looks at the SQLite file")
    from awayd.adapters.store_pg import PostgresStore  # noqa: PLC0415

    with PostgresStore.open(request.getfixturevalue("pg_url")) as pg:
        yield pg  # type: ignore[misc]  # the same Store protocol


def draft(uid: int, recipient: str = "bob@example.net") -> OutboxDraft:
    return OutboxDraft(
        message_id=f"<reply-{uid}@awayd.example.org>",
        recipient=recipient,
        envelope_from="",
        message=f"Subject: Auto: {uid}\r\n\r\nAway.\r\n".encode(),
    )


def record_reply(
    store: SqliteStore,
    uid: int,
    *,
    at: datetime = T0,
    sender: str = "bob@example.net",
    mailbox: str = "alice",
    rule: str = "holidays",
) -> int:
    outbox_id = store.record(
        mailbox=mailbox,
        folder="INBOX",
        uidvalidity=7,
        uid=uid,
        at=at,
        sender=sender,
        reason="reply",
        rule=rule,
        message_id=f"<orig-{uid}@example.net>",
        reply=draft(uid, sender),
        reservation=Reservation(sender_key=sender, rule_handle=f"{rule}#1"),
    )
    assert outbox_id is not None
    return outbox_id


def record_skip(
    store: SqliteStore, uid: int, reason: str, *, at: datetime = T0, rule: str | None = None
) -> None:
    assert (
        store.record(
            mailbox="alice",
            folder="INBOX",
            uidvalidity=7,
            uid=uid,
            at=at,
            sender="news@example.com",
            reason=reason,
            rule=rule,
            message_id=None,
        )
        is None
    )


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


# --- the file --------------------------------------------------------------------------------


def test_new_database_file_is_private(store: SqliteStore, db_path: Path) -> None:
    store.set_checkpoint("alice", "INBOX", 7, 10)
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        side = db_path.with_name(db_path.name + suffix)
        assert stat.S_IMODE(side.stat().st_mode) == 0o600, suffix


def test_database_is_in_wal_mode(store: SqliteStore, db_path: Path) -> None:
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_schema_version_is_recorded(store: SqliteStore, db_path: Path) -> None:
    with raw(db_path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_an_empty_existing_file_is_migrated_when_a_fresh_state_is_asked_for(db_path: Path) -> None:
    db_path.touch(mode=0o600)
    with SqliteStore.open(db_path, init_state=True) as store:
        store.set_checkpoint("alice", "INBOX", 7, 10)
        assert store.get_checkpoint("alice", "INBOX") is not None


def test_reopening_keeps_data_and_version(db_path: Path) -> None:
    with SqliteStore.open(db_path) as store:
        store.set_checkpoint("alice", "INBOX", 7, 10)
    with SqliteStore.open(db_path) as store:
        checkpoint = store.get_checkpoint("alice", "INBOX")
    assert checkpoint is not None
    assert (checkpoint.uidvalidity, checkpoint.last_uid) == (7, 10)
    with raw(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1


def test_an_appended_migration_step_upgrades_an_existing_database(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SqliteStore.open(db_path) as store:
        store.set_checkpoint("alice", "INBOX", 7, 10)
    step2 = ("ALTER TABLE checkpoints ADD COLUMN note TEXT", "UPDATE checkpoints SET note = 'v2'")
    monkeypatch.setattr(store_schema, "MIGRATIONS", (*store_schema.MIGRATIONS, step2))
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    SqliteStore.open(db_path).close()
    with raw(db_path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT note, last_uid FROM checkpoints").fetchall() == [("v2", 10)]


def test_a_failing_migration_step_leaves_the_old_version_whole(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SqliteStore.open(db_path).close()
    step2 = ("CREATE TABLE extra (x)", "THIS IS NOT SQL")
    monkeypatch.setattr(store_schema, "MIGRATIONS", (*store_schema.MIGRATIONS, step2))
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StateError, match="syntax error"):
        SqliteStore.open(db_path)
    with raw(db_path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "extra" not in tables


@pytest.mark.parametrize("readonly", [False, True])
def test_a_newer_schema_version_is_refused(db_path: Path, readonly: bool) -> None:
    SqliteStore.open(db_path).close()
    with raw(db_path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StateError) as info:
        SqliteStore.open(db_path, readonly=readonly)
    assert str(db_path) in str(info.value)
    assert "newer" in str(info.value)


def test_a_database_of_another_program_is_refused(db_path: Path) -> None:
    with raw(db_path) as conn:
        conn.execute("CREATE TABLE songs (title TEXT)")
    with pytest.raises(StateError, match="not an awayd database") as info:
        SqliteStore.open(db_path)
    assert str(db_path) in str(info.value)


@pytest.mark.parametrize("readonly", [False, True])
def test_a_file_that_is_not_a_database_is_refused(db_path: Path, readonly: bool) -> None:
    db_path.write_bytes(b"state: this is YAML, not SQLite\n" * 64)
    before = digest(db_path)
    with pytest.raises(StateError) as info:
        SqliteStore.open(db_path, readonly=readonly)
    assert str(db_path) in str(info.value)
    assert "not a database" in str(info.value)
    assert digest(db_path) == before


def test_a_directory_that_cannot_be_made_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("not a directory")
    path = tmp_path / "plain-file" / "state.db"
    with pytest.raises(StateError, match=r"plain-file/state\.db: cannot open"):
        SqliteStore.open(path)


def test_a_locked_database_fails_after_the_busy_timeout(db_path: Path) -> None:
    SqliteStore.open(db_path).close()
    holder = raw(db_path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(StateError) as info:
            SqliteStore.open(db_path, busy_timeout=0.2)
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(db_path) in str(info.value)
    assert "locked" in str(info.value)
    assert info.value.transient
    assert 0.15 <= waited < 5


def test_a_write_while_another_process_holds_the_lock_is_a_transient_state_error(db_path: Path) -> None:
    with SqliteStore.open(db_path, busy_timeout=0.1) as store:
        holder = raw(db_path)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StateError, match="locked") as info:
                store.set_checkpoint("alice", "INBOX", 7, 10)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert info.value.transient
        store.set_checkpoint("alice", "INBOX", 7, 10)  # usable again once the lock is gone


# --- read-only -------------------------------------------------------------------------------


def test_readonly_fails_clearly_on_a_missing_file(db_path: Path) -> None:
    with pytest.raises(StateError, match="no such file") as info:
        SqliteStore.open(db_path, readonly=True)
    assert str(db_path) in str(info.value)
    assert not db_path.exists()


def test_readonly_refuses_an_uninitialised_file(db_path: Path) -> None:
    db_path.touch()
    with pytest.raises(StateError, match="has not run"):
        SqliteStore.open(db_path, readonly=True)
    assert db_path.stat().st_size == 0


def test_readonly_reads_and_never_writes(db_path: Path) -> None:
    with SqliteStore.open(db_path) as store:
        record_reply(store, 1)
        store.suppress_add("@spam.example", now=T0)
    before = digest(db_path)
    with SqliteStore.open(db_path, readonly=True) as ro:
        assert ro.replied_since("alice", "bob@example.net", "holidays#1", T0)
        assert ro.replies_since("alice", T0) == 1
        assert ro.is_suppressed("alice", "x@spam.example")
        assert ro.pending_count() == 1
        assert len(ro.due_outbox(T0)) == 1
        assert ro.report(EPOCH).mailboxes[0].decisions == 1
        assert ro.get_checkpoint("alice", "INBOX") is not None
        with pytest.raises(StateError, match="read-only"):
            ro.set_checkpoint("alice", "INBOX", 7, 99)
        with pytest.raises(StateError, match="read-only"):
            ro.suppress_add("x@example.org", now=T0)
    assert digest(db_path) == before


def test_readonly_reads_while_the_daemon_holds_the_write_lock(db_path: Path) -> None:
    with SqliteStore.open(db_path) as store:
        store.set_checkpoint("alice", "INBOX", 7, 10)
    holder = raw(db_path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with SqliteStore.open(db_path, readonly=True, busy_timeout=0.2) as ro:
            checkpoint = ro.get_checkpoint("alice", "INBOX")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert checkpoint is not None


# --- checkpoints and record() ----------------------------------------------------------------


def test_checkpoint_is_absent_until_set(store: SqliteStore) -> None:
    assert store.get_checkpoint("alice", "INBOX") is None
    store.set_checkpoint("alice", "INBOX", 7, 10)
    store.set_checkpoint("alice", "INBOX", 8, 3)  # a new UIDVALIDITY may go backwards
    checkpoint = store.get_checkpoint("alice", "INBOX")
    assert checkpoint is not None
    assert (checkpoint.uidvalidity, checkpoint.last_uid) == (8, 3)
    assert store.get_checkpoint("alice", "Other") is None


def test_record_writes_decision_outbox_reservation_and_checkpoint_together(db_path: Path) -> None:
    with SqliteStore.open(db_path) as store:
        store.set_checkpoint("alice", "INBOX", 7, 10)
        outbox_id = record_reply(store, 12)
    with SqliteStore.open(db_path) as store:
        [row] = store.due_outbox(T0)
        assert row.id == outbox_id
        assert (row.mailbox, row.folder, row.uid, row.rule) == ("alice", "INBOX", 12, "holidays")
        assert row.message == draft(12).message
        assert row.message_id == "<reply-12@awayd.example.org>"
        assert (row.recipient, row.envelope_from) == ("bob@example.net", "")
        assert (row.state, row.attempts, row.last_error) == ("pending", 0, None)
        assert row.next_try == T0
        assert row.created_at == T0
        assert store.replied_since("alice", "bob@example.net", "holidays#1", T0)
        assert not store.replied_since("alice", "bob@example.net", "holidays#1", T0 + timedelta(seconds=1))
        assert not store.replied_since("alice", "bob@example.net", "other#1", T0)
        assert store.replies_since("alice", T0) == 1
        checkpoint = store.get_checkpoint("alice", "INBOX")
        assert checkpoint is not None
        assert checkpoint.last_uid == 12
        [mailbox] = store.report(EPOCH).mailboxes
        assert mailbox.decisions == 1


def test_record_of_a_skip_writes_the_decision_and_checkpoint_only(store: SqliteStore) -> None:
    record_skip(store, 5, "list")
    assert store.pending_count() == 0
    assert store.replies_since("alice", EPOCH) == 0
    checkpoint = store.get_checkpoint("alice", "INBOX")
    assert checkpoint is not None
    assert (checkpoint.uidvalidity, checkpoint.last_uid) == (7, 5)


def test_record_never_moves_the_checkpoint_back(store: SqliteStore) -> None:
    store.set_checkpoint("alice", "INBOX", 7, 20)
    record_skip(store, 15, "list")
    checkpoint = store.get_checkpoint("alice", "INBOX")
    assert checkpoint is not None
    assert checkpoint.last_uid == 20


def test_record_from_an_older_uidvalidity_leaves_the_checkpoint(store: SqliteStore) -> None:
    store.set_checkpoint("alice", "INBOX", 8, 3)
    record_skip(store, 50, "list")  # uidvalidity 7: a stale message after a reset
    checkpoint = store.get_checkpoint("alice", "INBOX")
    assert checkpoint is not None
    assert (checkpoint.uidvalidity, checkpoint.last_uid) == (8, 3)


def test_recording_a_message_twice_is_refused_and_writes_nothing(store: SqliteStore) -> None:
    record_reply(store, 12)
    with pytest.raises(StateError, match=r"uid 12 .* already recorded"):
        record_reply(store, 12, sender="carol@example.net")
    assert store.pending_count() == 1
    assert store.replies_since("alice", EPOCH) == 1
    assert not store.replied_since("alice", "carol@example.net", "holidays#1", EPOCH)


def test_a_reservation_needs_a_reply(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="reservation"):
        store.record(
            mailbox="alice",
            folder="INBOX",
            uidvalidity=7,
            uid=1,
            at=T0,
            sender="bob@example.net",
            reason="reply",
            rule="holidays",
            message_id=None,
            reservation=Reservation("bob@example.net", "holidays#1"),
        )
    assert store.get_checkpoint("alice", "INBOX") is None


def test_naive_times_are_refused(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.due_outbox(datetime(2026, 11, 2, 9, 0))


# --- crash safety ----------------------------------------------------------------------------

# The child kills itself with SIGKILL from inside record(): after the outbox and decision rows
# are written, before the history row and the checkpoint. It wraps sqlite3.connect, the
# process boundary, and does not reach into the store.
KILL_IN_RECORD = r"""
import os, signal, sqlite3, sys
from datetime import datetime, UTC
from pathlib import Path

class KillBeforeHistory(sqlite3.Connection):
    def execute(self, sql, *args):
        if sql.startswith("INSERT INTO history"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().execute(sql, *args)

real_connect = sqlite3.connect
sqlite3.connect = lambda *a, **kw: real_connect(*a, factory=KillBeforeHistory, **kw)

from awayd.adapters.store_sqlite import OutboxDraft, Reservation, SqliteStore

store = SqliteStore.open(Path(sys.argv[1]))
store.record(
    mailbox="alice", folder="INBOX", uidvalidity=7, uid=13,
    at=datetime(2026, 11, 2, 9, 5, tzinfo=UTC), sender="carol@example.net",
    reason="reply", rule="holidays", message_id="<orig-13@example.net>",
    reply=OutboxDraft("<reply-13@awayd>", "carol@example.net", "", b"Subject: x\r\n\r\ny\r\n"),
    reservation=Reservation("carol@example.net", "holidays#1"),
)
print("survived")
"""

# The child records replies as fast as it can until it is killed from outside.
RECORD_FOREVER = r"""
import sys
from datetime import datetime, UTC
from pathlib import Path
from awayd.adapters.store_sqlite import OutboxDraft, Reservation, SqliteStore

store = SqliteStore.open(Path(sys.argv[1]))
checkpoint = store.get_checkpoint("alice", "INBOX")
uid = checkpoint.last_uid if checkpoint else 0
print("ready", flush=True)
while True:
    uid += 1
    sender = f"s{uid}@example.net"
    store.record(
        mailbox="alice", folder="INBOX", uidvalidity=7, uid=uid,
        at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC), sender=sender,
        reason="reply", rule="holidays", message_id=f"<orig-{uid}@example.net>",
        reply=OutboxDraft(f"<reply-{uid}@awayd>", sender, "", b"Subject: x\r\n\r\ny\r\n"),
        reservation=Reservation(sender, "holidays#1"),
    )
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def test_a_process_killed_inside_record_leaves_none_of_it(db_path: Path) -> None:
    with SqliteStore.open(db_path) as store:
        record_reply(store, 12)
    done = subprocess.run(
        [sys.executable, "-c", KILL_IN_RECORD, str(db_path)],
        capture_output=True,
        env=child_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert b"survived" not in done.stdout
    with SqliteStore.open(db_path) as store:
        assert [row.uid for row in store.due_outbox(T0 + timedelta(hours=1))] == [12]
        assert not store.replied_since("alice", "carol@example.net", "holidays#1", EPOCH)
        assert store.replies_since("alice", EPOCH) == 1
        checkpoint = store.get_checkpoint("alice", "INBOX")
        assert checkpoint is not None
        assert checkpoint.last_uid == 12
        assert store.report(EPOCH).mailboxes[0].decisions == 1
        # The message was not recorded, so it can be recorded now.
        record_reply(store, 13, sender="carol@example.net")


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.4])
def test_a_writer_killed_at_any_moment_leaves_whole_records_only(db_path: Path, delay: float) -> None:
    SqliteStore.open(db_path).close()
    for _round in range(2):
        child = subprocess.Popen(
            [sys.executable, "-c", RECORD_FOREVER, str(db_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
        assert child.returncode == -signal.SIGKILL
        with SqliteStore.open(db_path) as store:
            checkpoint = store.get_checkpoint("alice", "INBOX")
            recorded = checkpoint.last_uid if checkpoint else 0
            assert store.pending_count() == recorded
            assert store.replies_since("alice", EPOCH) == recorded
            decisions = store.report(EPOCH).mailboxes
            assert sum(m.decisions for m in decisions) == recorded
            assert sorted(r.uid for r in store.due_outbox(T0, limit=100_000)) == list(range(1, recorded + 1))


# --- outbox life cycle -----------------------------------------------------------------------


def test_a_temporary_failure_is_retried_later_then_sent(store: SqliteStore) -> None:
    outbox_id = record_reply(store, 1)
    store.mark_retry(outbox_id, T0 + timedelta(minutes=5), "SMTP 127.0.0.1:25: RCPT TO refused: 451 later")
    assert store.due_outbox(T0 + timedelta(minutes=4)) == []
    [row] = store.due_outbox(T0 + timedelta(minutes=5))
    assert row.attempts == 1
    assert row.last_error is not None
    assert "451" in row.last_error
    assert row.message == draft(1).message  # the same bytes and Message-ID on every try
    assert store.pending_count() == 1
    store.mark_sent(outbox_id, T0 + timedelta(minutes=5))
    assert store.pending_count() == 0
    assert store.due_outbox(T0 + timedelta(days=1)) == []
    assert store.replied_since("alice", "bob@example.net", "holidays#1", T0)
    [mailbox] = store.report(EPOCH).mailboxes
    assert mailbox.outbox.sent == 1


def test_get_outbox_reads_one_row_in_any_state(store: SqliteStore) -> None:
    outbox_id = record_reply(store, 1)
    row = store.get_outbox(outbox_id)
    assert row is not None
    assert (row.uid, row.state) == (1, "pending")
    store.mark_failed(outbox_id, "550 no")
    row = store.get_outbox(outbox_id)
    assert row is not None
    assert (row.state, row.attempts, row.last_error) == ("failed", 1, "550 no")
    assert store.get_outbox(outbox_id + 1) is None


def test_due_outbox_is_oldest_first_and_limited(store: SqliteStore) -> None:
    for uid in (3, 1, 2):
        record_reply(store, uid, at=T0 + timedelta(minutes=uid), sender=f"s{uid}@example.net")
    assert [r.uid for r in store.due_outbox(T0 + timedelta(hours=1))] == [1, 2, 3]
    assert [r.uid for r in store.due_outbox(T0 + timedelta(hours=1), limit=2)] == [1, 2]
    assert [r.uid for r in store.due_outbox(T0 + timedelta(minutes=2))] == [1, 2]


def test_a_permanent_failure_releases_the_reservation(store: SqliteStore) -> None:
    outbox_id = record_reply(store, 1)
    store.mark_failed(outbox_id, "SMTP 127.0.0.1:25: RCPT TO refused: 550 no such user")
    assert store.pending_count() == 0
    assert not store.replied_since("alice", "bob@example.net", "holidays#1", EPOCH)
    assert store.replies_since("alice", EPOCH) == 0
    [mailbox] = store.report(EPOCH).mailboxes
    assert mailbox.outbox.failed == 1
    record_reply(store, 2)  # the sender may be answered again
    assert store.replied_since("alice", "bob@example.net", "holidays#1", EPOCH)


def test_marking_an_unknown_outbox_row_is_a_state_error(store: SqliteStore) -> None:
    with pytest.raises(StateError, match="no outbox row 42"):
        store.mark_sent(42, T0)
    with pytest.raises(StateError, match="no outbox row 42"):
        store.mark_retry(42, T0, "x")
    with pytest.raises(StateError, match="no outbox row 42"):
        store.mark_failed(42, "x")


def test_expired_replies_are_dropped_and_their_reservations_released(store: SqliteStore) -> None:
    old = record_reply(store, 1, at=T0, sender="old@example.net")
    record_reply(store, 2, at=T0 + timedelta(hours=2), sender="new@example.net")
    dropped = store.drop_expired(T0 + timedelta(hours=25), timedelta(hours=24))
    assert [(row.id, row.state, row.recipient) for row in dropped] == [(old, "dropped", "old@example.net")]
    assert [row.uid for row in store.due_outbox(T0 + timedelta(days=2))] == [2]
    assert not store.replied_since("alice", "old@example.net", "holidays#1", EPOCH)
    assert store.replied_since("alice", "new@example.net", "holidays#1", EPOCH)
    assert store.drop_expired(T0 + timedelta(hours=25), timedelta(hours=24)) == []
    store.mark_retry(old, T0 + timedelta(days=3), "late")  # no longer pending: ignored
    [mailbox] = store.report(EPOCH).mailboxes
    assert (mailbox.outbox.dropped, mailbox.outbox.pending) == (1, 1)


# --- HistoryView, suppressions, forget ------------------------------------------------------


def test_the_store_is_a_history_view(store: SqliteStore) -> None:
    view: HistoryView = store
    assert not view.replied_since("alice", "bob@example.net", "holidays#1", EPOCH)
    assert view.replies_since("alice", EPOCH) == 0
    assert not view.is_suppressed("alice", "bob@example.net")


def test_replies_since_counts_reserved_and_sent_per_mailbox(store: SqliteStore) -> None:
    sent = record_reply(store, 1, at=T0, sender="a@example.net")
    store.mark_sent(sent, T0)
    record_reply(store, 2, at=T0 + timedelta(minutes=30), sender="b@example.net")
    record_reply(store, 3, at=T0 + timedelta(minutes=30), sender="c@example.net", mailbox="desk")
    assert store.replies_since("alice", T0) == 2
    assert store.replies_since("alice", T0 + timedelta(minutes=1)) == 1
    assert store.replies_since("desk", EPOCH) == 1


def test_suppressions_match_address_and_domain_case_insensitively(store: SqliteStore) -> None:
    assert store.suppress_add("Bob@Example.NET", now=T0)
    assert not store.suppress_add("bob@example.net", now=T0)  # already there
    assert store.suppress_add("@Spam.Example", now=T0)
    assert store.suppress_add("carol@example.net", now=T0, mailbox="desk")
    assert store.is_suppressed("alice", "BOB@example.net")
    assert store.is_suppressed("desk", "anyone@spam.example")
    assert not store.is_suppressed("alice", "anyone@sub.spam.example")
    assert not store.is_suppressed("alice", "carol@example.net")
    assert store.is_suppressed("desk", "Carol@Example.net")
    assert [(s.mailbox, s.entry, s.added_at) for s in store.suppress_list()] == [
        ("*", "@spam.example", T0),
        ("*", "bob@example.net", T0),
        ("desk", "carol@example.net", T0),
    ]
    assert store.suppress_remove("BOB@example.net")
    assert not store.suppress_remove("bob@example.net")
    assert not store.suppress_remove("carol@example.net")  # it is desk's, not everyone's
    assert store.suppress_remove("carol@example.net", mailbox="desk")
    assert not store.is_suppressed("alice", "bob@example.net")


@pytest.mark.parametrize("entry", ["", "bob", "@", "bob@", "a b@example.net", "a@b@c"])
def test_a_suppression_entry_must_be_an_address_or_domain(store: SqliteStore, entry: str) -> None:
    with pytest.raises(ValueError, match="expected an address or @domain"):
        store.suppress_add(entry, now=T0)


def test_forget_clears_one_sender_in_one_mailbox(store: SqliteStore) -> None:
    record_reply(store, 1, sender="bob@example.net")
    record_reply(store, 2, sender="bob@example.net", rule="other")
    record_reply(store, 3, sender="carol@example.net")
    record_reply(store, 4, sender="bob@example.net", mailbox="desk")
    assert store.forget("alice", "Bob@Example.net") == 2
    assert not store.replied_since("alice", "bob@example.net", "holidays#1", EPOCH)
    assert store.replied_since("alice", "carol@example.net", "holidays#1", EPOCH)
    assert store.replied_since("desk", "bob@example.net", "holidays#1", EPOCH)
    assert store.forget("alice", "bob@example.net") == 0


# --- prune and report ------------------------------------------------------------------------


def test_prune_deletes_old_rows_and_keeps_pending_replies(store: SqliteStore) -> None:
    now = T0 + timedelta(days=100)
    old_sent = record_reply(store, 1, at=T0, sender="old@example.net")
    store.mark_sent(old_sent, T0)
    record_reply(store, 2, at=T0, sender="stuck@example.net")  # pending, however old
    record_skip(store, 3, "list", at=T0)
    recent = record_reply(store, 4, at=now - timedelta(days=1), sender="new@example.net")
    store.mark_sent(recent, now - timedelta(days=1))
    result = store.prune(now, keep_history=timedelta(days=30), keep_decisions=timedelta(days=90))
    assert (result.history, result.decisions, result.outbox) == (1, 3, 1)
    assert not store.replied_since("alice", "old@example.net", "holidays#1", EPOCH)
    assert store.replied_since("alice", "stuck@example.net", "holidays#1", EPOCH)
    assert store.replied_since("alice", "new@example.net", "holidays#1", EPOCH)
    assert [r.uid for r in store.due_outbox(now)] == [2]
    [mailbox] = store.report(EPOCH).mailboxes
    assert mailbox.decisions == 1
    assert (mailbox.outbox.sent, mailbox.outbox.pending) == (1, 1)


def test_report_counts_per_mailbox_reason_and_rule(store: SqliteStore) -> None:
    sent = record_reply(store, 1, sender="a@example.net")
    store.mark_sent(sent, T0)
    failed = record_reply(store, 2, sender="b@example.net")
    store.mark_failed(failed, "550")
    record_reply(store, 3, sender="c@example.net", rule="quotes")
    record_skip(store, 4, "list")
    record_skip(store, 5, "list")
    record_skip(store, 6, "already-replied", rule="holidays")
    record_reply(store, 7, sender="d@example.net", mailbox="desk")
    record_skip(store, 8, "bulk", at=T0 - timedelta(days=30))  # before the window
    report = store.report(T0 - timedelta(days=7))
    alice, desk = report.mailboxes
    assert alice.mailbox == "alice"
    assert alice.decisions == 6
    assert [(rc.reason, rc.count) for rc in alice.reasons] == [
        ("reply", 3),
        ("list", 2),
        ("already-replied", 1),
    ]
    holidays, quotes = alice.rules
    assert (holidays.rule, holidays.decisions, holidays.replies) == ("holidays", 3, 2)
    assert (holidays.outbox.sent, holidays.outbox.failed, holidays.outbox.pending) == (1, 1, 0)
    assert (quotes.rule, quotes.decisions, quotes.replies, quotes.outbox.pending) == ("quotes", 1, 1, 1)
    assert (alice.outbox.sent, alice.outbox.failed, alice.outbox.pending) == (1, 1, 1)
    assert (desk.mailbox, desk.decisions, desk.outbox.pending) == ("desk", 1, 1)


def test_report_is_ready_for_json(store: SqliteStore) -> None:
    record_reply(store, 1)
    data = json.loads(json.dumps(store.report(EPOCH).as_dict()))
    assert data["since"] == "1970-01-01T00:00:00+00:00"
    assert data["mailboxes"][0]["reasons"] == [{"reason": "reply", "count": 1}]
    assert data["mailboxes"][0]["rules"][0]["outbox"]["pending"] == 1


# --- threads and life cycle ------------------------------------------------------------------


def test_several_threads_share_one_store(store: SqliteStore) -> None:
    errors: list[BaseException] = []

    def work(base: int) -> None:
        try:
            for n in range(25):
                uid = base + n
                record_reply(store, uid, sender=f"s{uid}@example.net")
                store.replies_since("alice", EPOCH)
                store.due_outbox(T0)
        except BaseException as err:  # reported below, with the thread's error
            errors.append(err)

    threads = [threading.Thread(target=work, args=(1000 * k,)) for k in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.pending_count() == 100
    assert store.replies_since("alice", EPOCH) == 100


def test_a_closed_store_refuses_work(db_path: Path) -> None:
    store = SqliteStore.open(db_path)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StateError, match="closed"):
        store.pending_count()


def test_a_missing_parent_directory_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "awayd" / "state.db"
    with SqliteStore.open(path):
        pass
    assert path.exists()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
