"""The state store's WAL stays bounded, and a store that cannot commit says so, on real files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from awayd.adapters.store_sqlite import WAL_SIZE_LIMIT, OutboxDraft, SqliteStore

NOW = datetime(2026, 12, 22, 9, 0, tzinfo=UTC)


def _burst(store: SqliteStore, count: int, start: int = 1) -> None:
    for uid in range(start, start + count):
        store.record(mailbox="alice", folder="INBOX", uidvalidity=1, uid=uid, at=NOW,
                     sender=f"s{uid}@example.net", reason="reply", rule="away",
                     message_id=f"<m{uid}@example.net>",
                     reply=OutboxDraft(message_id=f"<r{uid}@example.org>",
                                       recipient=f"s{uid}@example.net", envelope_from="",
                                       message=b"x" * 4000))


def test_a_checkpoint_empties_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStore.open(path) as store:
        _burst(store, 300)
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size > 0
        store.checkpoint_wal()
        assert wal.stat().st_size == 0
        store.check_writable()  # and the store goes on working
        _burst(store, 5, start=301)
        assert store.pending_count() == 305


def test_the_wal_is_cut_back_after_automatic_checkpoints(tmp_path: Path) -> None:
    """SQLite keeps a WAL file at its largest size unless journal_size_limit says otherwise."""
    path = tmp_path / "state.db"
    with SqliteStore.open(path) as store:
        _burst(store, 3000)  # about 12 MB through the WAL: several automatic checkpoints
        _burst(store, 1, start=3001)
        assert path.with_name(path.name + "-wal").stat().st_size <= WAL_SIZE_LIMIT + (1 << 16)
