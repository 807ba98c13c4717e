"""Look at an existing state file without writing a byte: missing, empty, awayd's or refused."""

from __future__ import annotations

import sqlite3
import stat
from enum import Enum
from pathlib import Path

from awayd.errors import StateError

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\x00"


class StateFile(Enum):
    """What `inspect_state` found at the state path."""

    MISSING = "missing"  # nothing there: a first start creates it
    EMPTY = "empty"  # 0 bytes, or an SQLite file without a single table
    AWAYD = "awayd"  # awayd's tables (schema_version); opening may migrate it


def _side(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def inspect_state(path: Path) -> StateFile:
    """Say what is at `path`, reading it only: no journal mode switch, no -wal or -shm left.

    Raises:
        StateError (never transient): naming the file: not a regular file, unreadable, not an
            SQLite database, or another program's database.
    """
    wal = _side(path, "-wal")
    try:
        info = path.stat()
    except FileNotFoundError:
        return StateFile.MISSING
    except OSError as err:
        raise StateError(f"state database {path}: cannot open: {err.strerror or err}") from err
    if not stat.S_ISREG(info.st_mode):
        raise StateError(f"state database {path}: cannot open: not a regular file")
    wal_size = wal.stat().st_size if wal.exists() else 0
    if info.st_size == 0 and wal_size == 0:
        return StateFile.EMPTY
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as err:
        raise StateError(f"state database {path}: cannot read: {err.strerror or err}") from err
    if info.st_size and head != SQLITE_MAGIC:
        raise StateError(
            f"state database {path}: not a database awayd can use (the file is not SQLite);"
            " awayd leaves it untouched: point state.path at another file"
        )
    tables = _tables(path, use_wal=wal.exists())
    if "schema_version" in tables:
        return StateFile.AWAYD
    if tables - {"sqlite_sequence"}:
        shown = ", ".join(sorted(tables)[:5])
        raise StateError(
            f"state database {path}: not an awayd database (tables {shown} but no"
            " schema_version); awayd leaves it untouched: point state.path at another file"
        )
    return StateFile.EMPTY


def _tables(path: Path, *, use_wal: bool) -> set[str]:
    # Without a WAL, `immutable=1` reads the main file with no locks and no -shm file, so
    # nothing is created beside it. With a WAL (a daemon running, or killed), its -wal and
    # -shm already exist, and only a normal read-only open sees the data the WAL holds and
    # reads safely while a checkpoint rewrites the main file.
    query = "?mode=ro" if use_wal else "?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + query, uri=True, isolation_level=None)
    except sqlite3.Error as err:
        raise StateError(f"state database {path}: cannot open read-only: {err}") from err
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.Error as err:
        raise StateError(f"state database {path}: not a database awayd can use: {err}") from err
    finally:
        conn.close()
    return {str(name) for (name,) in rows}


def empty_state_error(path: Path) -> StateError:
    """The refusal to start on an existing empty state (it would answer everyone again)."""
    return StateError(
        f"state database {path}: the file exists but is empty (no awayd state in it); starting"
        " on it would answer again senders that were already answered. If a fresh state is"
        " intended, run `awayd run --init-state` once; otherwise restore the file from a backup"
    )
