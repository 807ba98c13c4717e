"""Opening the state file: what is already there is inspected before a byte is written."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from awayd.adapters.state_lock import StateLock, lock_path
from awayd.adapters.store_inspect import StateFile, inspect_state
from awayd.adapters.store_sqlite import SqliteStore
from awayd.errors import StateError

REPO = Path(__file__).resolve().parents[2]


def snapshot(directory: Path) -> dict[str, str]:
    """Every file in `directory` with the digest of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file()}


def foreign(path: Path, *, wal: bool) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE songs (title TEXT)")
    conn.execute("INSERT INTO songs VALUES ('la mer')")
    conn.close()


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize("wal", [False, True], ids=["rollback", "wal"])
def test_another_programs_database_is_refused_without_writing_anything(
    tmp_path: Path, wal: bool, readonly: bool
) -> None:
    path = tmp_path / "state.db"
    foreign(path, wal=wal)
    before = snapshot(tmp_path)
    assert list(before) == ["state.db"]
    with pytest.raises(StateError, match="not an awayd database") as info:
        SqliteStore.open(path, readonly=readonly)
    assert str(path) in str(info.value)
    assert "songs" in str(info.value)
    # No journal mode switch, no -wal or -shm left beside it, the bytes unchanged.
    assert snapshot(tmp_path) == before
    assert path.read_bytes()[18:20] == (b"\x02\x02" if wal else b"\x01\x01")


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"\x00\x01binary, but not SQLite" * 100)
    before = snapshot(tmp_path)
    with pytest.raises(StateError, match="not SQLite") as info:
        SqliteStore.open(path, init_state=True)
    assert str(path) in str(info.value)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("content", ["zero-bytes", "sqlite-without-tables"])
def test_an_existing_empty_state_is_refused_unless_a_fresh_one_is_asked_for(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "state.db"
    if content == "zero-bytes":
        path.touch(mode=0o600)
    else:
        conn = sqlite3.connect(path)
        conn.execute("VACUUM")  # a valid SQLite file with no table in it
        conn.close()
    before = snapshot(tmp_path)
    with pytest.raises(StateError, match="--init-state") as info:
        SqliteStore.open(path)
    assert str(path) in str(info.value)
    assert not info.value.transient  # exit 78: systemd must not restart into it
    assert snapshot(tmp_path) == before
    with SqliteStore.open(path, init_state=True) as store:
        store.set_checkpoint("alice", "INBOX", 1, 1)
    assert inspect_state(path) is StateFile.AWAYD
    SqliteStore.open(path).close()  # awayd's state now: no flag needed any more


def test_a_missing_state_is_created_whole_and_nothing_else_is_left(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.db"
    assert inspect_state(path) is StateFile.MISSING
    SqliteStore.open(path).close()
    assert inspect_state(path) is StateFile.AWAYD
    assert [p.name for p in path.parent.iterdir()] == ["state.db"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


KILL_IN_FIRST_START = """
import os, signal, sqlite3, sys
from pathlib import Path
from awayd.adapters import store_schema
real = store_schema.migrate
def dying(conn, where):
    real(conn, where)
    os.kill(os.getpid(), signal.SIGKILL)
store_schema.migrate = dying
store_schema.Database.open(Path(sys.argv[1]), readonly=False, busy_timeout=5.0)
"""


def test_a_first_start_killed_half_way_leaves_no_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", KILL_IN_FIRST_START, str(path)], env=env,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode < 0, done.stderr.decode()
    assert not path.exists()  # the next start is a first start, not an "empty state" error
    with SqliteStore.open(path) as store:
        assert store.get_checkpoint("alice", "INBOX") is None


def test_a_second_lock_on_the_same_state_is_refused_naming_the_file_and_pid(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with StateLock.acquire(state, pid=4242):
        assert lock_path(state).read_text() == "4242\n"
        with pytest.raises(StateError) as info:
            StateLock.acquire(state)
        assert info.value.transient  # exit 75
        assert str(state) in str(info.value)
        assert "PID 4242" in str(info.value)
    StateLock.acquire(state).release()  # free again once released
