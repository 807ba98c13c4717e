"""`awayd state migrate`: a SQLite state copied to PostgreSQL, whole, and refusals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from awayd.adapters.state_lock import StateLock
from awayd.adapters.store_absence import read_absences, set_absence
from awayd.adapters.store_api import ReplyClaimed
from awayd.adapters.store_pg import PostgresStore
from awayd.adapters.store_sqlite import OutboxDraft, Reservation, SqliteStore
from awayd.core.absence import make_absence
from tests.integration.daemon import awayd

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def reply(store: SqliteStore | PostgresStore, uid: int, sender: str, at: datetime = T0) -> int:
    outbox_id = store.record(
        mailbox="alice", folder="INBOX", uidvalidity=7, uid=uid, at=at, sender=sender,
        reason="reply", rule="away", message_id=f"<m{uid}@example.net>",
        reply=OutboxDraft(f"<r{uid}@example.org>", sender, "", f"Subject: {uid}\r\n\r\nx".encode()),
        reservation=Reservation(sender, "away#1", WEEK))
    assert outbox_id is not None
    return outbox_id


@pytest.fixture
def sqlite_state(tmp_path: Path) -> Path:
    """A state with every kind of row: checkpoints, sent, pending and failed replies, skips,
    opt-outs and an owner absence."""
    path = tmp_path / "state.db"
    with SqliteStore.open(path) as store:
        store.set_checkpoint("alice", "Archive", 3, 40)
        sent = reply(store, 1, "bob@example.net")
        store.mark_sent(sent, T0 + timedelta(seconds=1))
        failed = reply(store, 2, "dave@example.net")
        store.mark_failed(failed, "550 no such user")
        reply(store, 3, "carol@example.net")  # still pending
        store.record(mailbox="alice", folder="INBOX", uidvalidity=7, uid=4, at=T0,
                     sender="news@example.com", reason="list", rule=None, message_id=None)
        store.suppress_add("@spam.example", now=T0)
        set_absence(store.db, make_absence("alice", date(2026, 7, 1), date(2026, 7, 20), T0))
    return path


def config(tmp_path: Path, state: Path) -> Path:
    path = tmp_path / "awayd.yaml"
    path.write_text(yaml.safe_dump({"state": {"path": str(state)}, "mailboxes": [
        {"name": "alice", "address": "alice@example.org", "rules": [{"name": "away",
                                                                      "text": "Away."}]}]}))
    return path


def test_migrate_copies_every_row_and_the_copy_behaves_like_the_original(
        tmp_path: Path, sqlite_state: Path, pg_url: str) -> None:
    with SqliteStore.open(sqlite_state, readonly=True) as before:
        report_before = before.report(T0 - WEEK)
    done = awayd("state", "migrate", "--to", pg_url, config=config(tmp_path, sqlite_state))
    assert done.returncode == 0, done.stderr
    assert ("checkpoints 2, outbox 3, history 2, decisions 4, suppressions 1, absences 1"
            in done.stdout)
    with PostgresStore.open(pg_url) as pg:
        assert pg.report(T0 - WEEK) == report_before
        [pending] = pg.due_outbox(T0 + timedelta(hours=1))
        assert (pending.uid, pending.recipient, pending.message_id, pending.message) == (
            3, "carol@example.net", "<r3@example.org>", b"Subject: 3\r\n\r\nx")
        assert pg.get_checkpoint("alice", "Archive").last_uid == 40  # type: ignore[union-attr]
        assert pg.get_checkpoint("alice", "INBOX").last_uid == 4  # type: ignore[union-attr]
        assert pg.is_suppressed("alice", "x@spam.example")
        assert read_absences(pg.db)["alice"].until == date(2026, 7, 20)
        # the claims came along: bob and carol are answered, dave (failed) is free again
        with pytest.raises(ReplyClaimed):
            reply(pg, 10, "bob@example.net", T0 + timedelta(days=1))
        with pytest.raises(ReplyClaimed):
            reply(pg, 11, "carol@example.net", T0 + timedelta(days=1))
        new_id = reply(pg, 12, "dave@example.net", T0 + timedelta(days=1))
        assert new_id > pending.id  # ids go on after the copied ones


def test_migrate_refuses_a_target_that_holds_state_unless_forced(
        tmp_path: Path, sqlite_state: Path, pg_url: str) -> None:
    with PostgresStore.open(pg_url) as pg:
        pg.suppress_add("someone@example.net", now=T0)
    cfg = config(tmp_path, sqlite_state)
    refused = awayd("state", "migrate", "--to", pg_url, config=cfg)
    assert refused.returncode == 78
    assert "already holds state (suppressions)" in refused.stderr
    with PostgresStore.open(pg_url) as pg:
        assert [s.entry for s in pg.suppress_list()] == ["someone@example.net"]  # untouched
    forced = awayd("state", "migrate", "--to", pg_url, "--force", config=cfg)
    assert forced.returncode == 0, forced.stderr
    with PostgresStore.open(pg_url) as pg:
        assert [s.entry for s in pg.suppress_list()] == ["@spam.example"]


def test_migrate_refuses_while_a_daemon_uses_the_state(
        tmp_path: Path, sqlite_state: Path, pg_url: str) -> None:
    lock = StateLock.acquire(sqlite_state)
    try:
        busy = awayd("state", "migrate", "--to", pg_url, config=config(tmp_path, sqlite_state))
    finally:
        lock.release()
    assert busy.returncode == 75
    assert "in use" in busy.stderr
    with PostgresStore.open(pg_url) as pg:
        assert pg.pending_count() == 0


def test_migrate_needs_a_postgresql_url(tmp_path: Path, sqlite_state: Path) -> None:
    bad = awayd("state", "migrate", "--to", "mysql://x:secret@db/awayd",
                config=config(tmp_path, sqlite_state))
    assert bad.returncode == 2
    assert "expected a URL such as postgresql://" in bad.stderr
    assert "secret" not in bad.stderr
