"""The absences table: the owner's absence per mailbox, set by `awayd away`, ended by `back`."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from jinja2 import TemplateSyntaxError

from awayd.adapters.store_api import StateDb
from awayd.adapters.store_rows import from_ts, to_ts
from awayd.core.absence import OwnerAbsence, make_absence
from awayd.errors import StateError

_Row = tuple[str, str, str, str | None, str | None, float]


def _point(text: str) -> date | datetime:
    return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)


def _absence(row: _Row, where: Path | str) -> OwnerAbsence:
    mailbox, starts, until, text, reply_to, created = row
    try:
        return make_absence(mailbox, _point(starts), _point(until), from_ts(created), text=text,
                            reply_to=reply_to)
    except (ValueError, TemplateSyntaxError) as err:
        raise StateError(f"state database {where}: the absence of mailbox {mailbox} cannot be "
                         f"read ({err}); end it with `awayd back {mailbox}`") from err


def set_absence(db: StateDb, absence: OwnerAbsence) -> None:
    """Store `absence`, replacing the mailbox's previous one."""
    with db.write("set an absence") as conn:
        conn.execute(
            "INSERT INTO absences (mailbox, starts, until, text, reply_to, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox) DO UPDATE SET starts = excluded.starts,"
            " until = excluded.until, text = excluded.text, reply_to = excluded.reply_to,"
            " created_at = excluded.created_at",
            (absence.mailbox, absence.start.isoformat(), absence.until.isoformat(), absence.text,
             absence.reply_to, to_ts(absence.created_at)))


@dataclass(frozen=True)
class Back:
    """What `awayd back` did: whether an absence was ended, how many reply records went."""

    ended: bool
    forgotten: int


def end_absence(db: StateDb, mailbox: str) -> Back:
    """End the mailbox's absence and forget every sender it answered, in one transaction.

    Forgetting the whole history of the mailbox is what Exchange does when out-of-office is
    switched off: the next absence answers everyone again. The hourly and daily caps count
    from the history too, so they start again from zero.
    """
    with db.write("end an absence") as conn:
        ended = conn.execute("DELETE FROM absences WHERE mailbox = ?", (mailbox,)).rowcount
        forgotten = conn.execute("DELETE FROM history WHERE mailbox = ?", (mailbox,)).rowcount
    return Back(bool(ended), forgotten)


_SELECT = "SELECT mailbox, starts, until, text, reply_to, created_at FROM absences"


def _rows(db: StateDb, mailbox: str | None = None) -> list[_Row]:
    sql, args = (_SELECT, ()) if mailbox is None else (_SELECT + " WHERE mailbox = ?", (mailbox,))
    with db.read("read the absences") as conn:
        return [(str(m), str(s), str(u), t, r, float(c)) for m, s, u, t, r, c in conn.execute(sql, args)]


def read_absences(db: StateDb) -> dict[str, OwnerAbsence]:
    """Every stored absence by mailbox name."""
    return {row[0]: _absence(row, db.path) for row in _rows(db)}


class AbsenceCache:
    """The daemon's view of one mailbox's absence, read again when older than `max_age` seconds.

    The default, 0, reads the mailbox's row for every decision (a primary-key lookup, about
    20 us next to about 400 us for a decision), so a message decided after `awayd away`
    returned is decided with the absence. A row that did not change keeps its compiled value.
    A row that cannot be read is reported once through `on_error` and counts as no absence; a
    database that cannot be read keeps the last view (a lock must not switch absences off).
    """

    def __init__(self, db: StateDb, *, max_age: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_error: Callable[[str], None] | None = None) -> None:
        self._db = db
        self._max_age = max_age
        self._monotonic = monotonic
        self._on_error = on_error
        self._lock = threading.Lock()
        self._read_at: dict[str, float] = {}
        self._rows: dict[str, _Row | None] = {}
        self._values: dict[str, OwnerAbsence | None] = {}

    def get(self, mailbox: str) -> OwnerAbsence | None:
        with self._lock:
            now = self._monotonic()
            read_at = self._read_at.get(mailbox)
            if read_at is None or now - read_at >= self._max_age:
                self._refresh(mailbox)
                self._read_at[mailbox] = now
            return self._values.get(mailbox)

    def _refresh(self, mailbox: str) -> None:
        try:
            rows = _rows(self._db, mailbox)
        except (StateError, sqlite3.Error) as err:
            self._report(str(err))
            return
        row = rows[0] if rows else None
        if mailbox in self._rows and self._rows[mailbox] == row:
            return  # unchanged: keep the compiled value (or the error already reported)
        self._rows[mailbox] = row
        self._values[mailbox] = None
        if row is not None:
            try:
                self._values[mailbox] = _absence(row, self._db.path)
            except StateError as err:
                self._report(str(err))

    def _report(self, message: str) -> None:
        if self._on_error is not None:
            self._on_error(message)
