"""Open the SQLite state file safely (0600, WAL, locks) and migrate its schema step by step."""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from awayd.adapters.fairlock import FairRLock
from awayd.adapters.store_inspect import StateFile, empty_state_error, inspect_state
from awayd.errors import StateError

# Each entry is one schema version: the statements that take version n-1 to n. Append, never
# edit: a database records the version it reached and only the later steps run on it.
# Times are UTC epoch seconds (REAL); ids in outbox are AUTOINCREMENT so that a history or
# decision row never points at a reused id after pruning.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the tables of DESIGN §7
        """CREATE TABLE checkpoints (
            mailbox     TEXT    NOT NULL,
            folder      TEXT    NOT NULL,
            uidvalidity INTEGER NOT NULL,
            last_uid    INTEGER NOT NULL,
            PRIMARY KEY (mailbox, folder)
        )""",
        """CREATE TABLE outbox (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            mailbox       TEXT    NOT NULL,
            folder        TEXT    NOT NULL,
            uid           INTEGER NOT NULL,
            rule          TEXT,
            message_id    TEXT    NOT NULL,
            recipient     TEXT    NOT NULL,
            envelope_from TEXT    NOT NULL,
            bytes         BLOB    NOT NULL,
            state         TEXT    NOT NULL DEFAULT 'pending'
                          CHECK (state IN ('pending', 'sent', 'failed', 'dropped')),
            attempts      INTEGER NOT NULL DEFAULT 0,
            next_try      REAL    NOT NULL,
            created_at    REAL    NOT NULL,
            sent_at       REAL,
            last_error    TEXT
        )""",
        "CREATE INDEX outbox_due ON outbox (state, next_try)",
        "CREATE INDEX outbox_created ON outbox (created_at)",
        """CREATE TABLE history (
            id          INTEGER PRIMARY KEY,
            mailbox     TEXT NOT NULL,
            sender_key  TEXT NOT NULL,
            rule_handle TEXT NOT NULL,
            replied_at  REAL NOT NULL,
            state       TEXT NOT NULL CHECK (state IN ('reserved', 'sent')),
            outbox_id   INTEGER
        )""",
        "CREATE INDEX history_sender ON history (mailbox, sender_key, rule_handle, replied_at)",
        "CREATE INDEX history_mailbox ON history (mailbox, replied_at)",
        "CREATE INDEX history_outbox ON history (outbox_id)",
        """CREATE TABLE decisions (
            id          INTEGER PRIMARY KEY,
            mailbox     TEXT    NOT NULL,
            folder      TEXT    NOT NULL,
            uidvalidity INTEGER NOT NULL,
            uid         INTEGER NOT NULL,
            at          REAL    NOT NULL,
            sender      TEXT,
            reason      TEXT    NOT NULL,
            rule        TEXT,
            message_id  TEXT,
            outbox_id   INTEGER,
            UNIQUE (mailbox, folder, uidvalidity, uid)
        )""",
        "CREATE INDEX decisions_at ON decisions (at)",
        """CREATE TABLE suppressions (
            mailbox  TEXT NOT NULL,
            entry    TEXT NOT NULL,
            added_at REAL NOT NULL,
            PRIMARY KEY (mailbox, entry)
        )""",
    ),
    (  # 2: the owner's absence per mailbox (`awayd away`); dates as ISO text, as in rules
        """CREATE TABLE absences (
            mailbox    TEXT PRIMARY KEY,
            starts     TEXT NOT NULL,
            until      TEXT NOT NULL,
            text       TEXT,
            reply_to   TEXT,
            created_at REAL NOT NULL
        )""",
    ),
)

#: The version this code writes; a database with a higher one was written by a newer awayd.
SCHEMA_VERSION = len(MIGRATIONS)


def read_version(conn: sqlite3.Connection, where: str) -> int:
    """Return the database's schema version, 0 for an empty database.

    Raises:
        StateError: the database holds other tables and no schema_version (not awayd's), or
            was written by a newer awayd.
    """
    tables = {str(name) for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "schema_version" not in tables:
        if tables - {"sqlite_sequence"}:
            raise StateError(f"state database {where}: not an awayd database (tables but no schema_version)")
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    version = int(row[0] or 0)
    if version > SCHEMA_VERSION:
        raise StateError(
            f"state database {where}: schema version {version} is newer than this awayd"
            f" knows ({SCHEMA_VERSION}); upgrade awayd or use another state file"
        )
    return version


def migrate(conn: sqlite3.Connection, where: str) -> int:
    """Bring the schema to SCHEMA_VERSION step by step; return the version found.

    Runs inside the caller's write transaction, so a failed step leaves the old version whole.
    """
    found = read_version(conn, where)
    if found == 0:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version (version) VALUES (0)")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version - 1]:
            conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = ?", (version,))
    return found


class Database:
    """One SQLite connection shared by threads, serialised by a lock, with explicit transactions."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, readonly: bool) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self.readonly = readonly
        self._lock = FairRLock()  # the relay's turn comes among a thousand folder threads

    @classmethod
    def open(cls, path: Path, *, readonly: bool, busy_timeout: float,
             init_state: bool = False) -> Database:
        """Open, and unless `readonly` create (0600) and migrate, the database at `path`.

        What is already there is inspected before anything is written: another program's file
        is refused untouched, and an existing empty one (0 bytes, or SQLite without a table) is
        refused unless `init_state` says a fresh state is intended. A missing file is created
        whole (schema included) under a temporary name, then linked into place, so a crash
        during a first start never leaves an empty state behind.

        Raises:
            StateError: naming the file and the cause.
        """
        found = inspect_state(path)
        if readonly:
            if found is StateFile.MISSING:
                raise StateError(f"state database {path}: cannot open read-only: no such file")
            uri = path.resolve().as_uri() + "?mode=ro"
        else:
            if found is StateFile.EMPTY and not init_state:
                raise empty_state_error(path)
            if found is StateFile.MISSING:
                _create_fresh(path, busy_timeout)
            uri = path.resolve().as_uri() + "?mode=rw"
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=busy_timeout,
                isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
                check_same_thread=False,  # shared by threads, serialised by the lock
            )
        except sqlite3.Error as err:
            raise StateError(f"state database {path}: cannot open: {err}") from err
        try:
            conn.execute(f"PRAGMA busy_timeout = {max(0, round(busy_timeout * 1000))}")
            if readonly:
                _check_readable(conn, path)
            else:
                _prepare_writable(conn, path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise state_error(path, "cannot open", exc, busy_timeout) from exc
            raise
        return cls(conn, path, readonly=readonly)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                if not self.readonly:
                    conn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass  # only statistics; closing matters more
            finally:
                conn.close()

    def limit_wal(self, size: int) -> None:
        """Keep the WAL file near `size` bytes: checkpoint automatically once it holds that
        much (SQLite's default is 1000 pages, 4 MiB) and cut it back to `size` afterwards
        (SQLite would otherwise keep the file at its largest size)."""
        with self._lock:
            if self._conn is not None:
                page = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
                self._conn.execute(f"PRAGMA wal_autocheckpoint = {max(16, int(size) // page)}")
                self._conn.execute(f"PRAGMA journal_size_limit = {int(size)}")

    def checkpoint(self) -> None:
        """PRAGMA wal_checkpoint(TRUNCATE): the WAL's pages into the database, the WAL emptied.

        Raises:
            StateError: the checkpoint failed.
        """
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StateError(f"state database {self.path}: already closed")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as err:
                raise state_error(self.path, "checkpoint the WAL", err) from err

    @contextmanager
    def write(self, what: str) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): all or nothing; sqlite errors become StateError."""
        if self.readonly:
            raise StateError(f"state database {self.path}: opened read-only, cannot {what}")
        with self._lock, self._transaction("BEGIN IMMEDIATE", what) as conn:
            yield conn

    @contextmanager
    def read(self, what: str) -> Iterator[sqlite3.Connection]:
        """A read transaction, so that several queries (report) see one snapshot."""
        with self._lock, self._transaction("BEGIN", what) as conn:
            yield conn

    @contextmanager
    def _transaction(self, begin: str, what: str) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        if conn is None:
            raise StateError(f"state database {self.path}: already closed")
        try:
            conn.execute(begin)
        except sqlite3.Error as err:
            raise state_error(self.path, f"cannot {what}", err) from err
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with suppress(sqlite3.Error):  # the original error says more
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise state_error(self.path, f"cannot {what}", exc) from exc
            raise


def state_error(path: Path, what: str, err: sqlite3.Error, busy_timeout: float | None = None) -> StateError:
    """A StateError naming the file and the cause; transient when the database was locked."""
    name = getattr(err, "sqlite_errorname", "")
    busy = name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    cause = str(err)
    if busy:
        waited = f" after {busy_timeout:g} s" if busy_timeout is not None else ""
        cause = f"{cause}{waited} (another process holds the write lock)"
    error = StateError(f"state database {path}: {what}: {cause}")
    # A full disk or an I/O error goes away when space is freed: temporary (exit 75, which
    # systemd restarts), not a configuration error (78, which it does not).
    error.transient = busy or name.startswith(("SQLITE_FULL", "SQLITE_IOERR"))
    return error


def _create_fresh(path: Path, busy_timeout: float) -> None:
    # Built under a temporary name (mkstemp: 0600 from its first byte, which the -wal and -shm
    # files inherit) and linked into place only once migrated: a start killed half-way leaves
    # no state file at all, and the next start is a first start again.
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # e.g. ~/.local/state/awayd
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.new-", dir=path.parent)
    except OSError as err:
        error = StateError(f"state database {path}: cannot open: {err.strerror or err}")
        error.transient = err.errno in (errno.ENOSPC, errno.EDQUOT)
        raise error from err
    os.close(fd)
    fresh = Path(name)
    try:
        conn = sqlite3.connect(fresh, timeout=busy_timeout, isolation_level=None)
        try:
            _prepare_writable(conn, path)
        finally:
            conn.close()  # the last connection checkpoints and removes the -wal
        try:
            os.link(fresh, path)
        except FileExistsError:
            pass  # created meanwhile by another command: keep theirs
        except OSError:
            os.rename(fresh, path)  # a file system without hard links
    except sqlite3.Error as err:
        raise state_error(path, "cannot create", err, busy_timeout) from err
    except OSError as err:
        error = StateError(f"state database {path}: cannot create: {err.strerror or err}")
        error.transient = err.errno in (errno.ENOSPC, errno.EDQUOT)
        raise error from err
    finally:
        for leftover in (fresh, *(fresh.with_name(fresh.name + s) for s in ("-wal", "-shm"))):
            with suppress(OSError):
                leftover.unlink()


def _prepare_writable(conn: sqlite3.Connection, path: Path) -> None:
    mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
    if mode.lower() != "wal":
        raise StateError(f"state database {path}: cannot use WAL mode (still {mode})")
    # NORMAL in WAL mode: every commit survives the process being killed, which is what the
    # outbox protocol relies on; a power cut may lose the last commits, and then a reply is
    # sent again (the message is decided again from the older checkpoint): never lost.
    conn.execute("PRAGMA synchronous = NORMAL")
    # Taking the write lock even when nothing is to migrate makes a locked database fail here,
    # at start, rather than on the first message.
    conn.execute("BEGIN IMMEDIATE")
    try:
        migrate(conn, str(path))
        conn.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _check_readable(conn: sqlite3.Connection, path: Path) -> None:
    version = read_version(conn, str(path))
    if version == 0:
        raise StateError(f"state database {path}: empty, awayd has not run with it yet")
    if version < SCHEMA_VERSION:
        raise StateError(
            f"state database {path}: schema version {version} is older than this awayd's"
            f" ({SCHEMA_VERSION}); run the daemon once to upgrade it"
        )
