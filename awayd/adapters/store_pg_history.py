"""What one decision reads from the PostgreSQL history, in one query instead of one per guard."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from awayd.adapters.store_pg_schema import PgDatabase
from awayd.adapters.store_rows import to_ts
from awayd.core.history import HistoryView

#: The windows of the reply caps (core.decide asks for the last hour and the last day).
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# Everything the guards of one decision may ask about one sender, at one moment: opted out?
# replies of the mailbox within the hour and the day, the newest reply per rule to the sender.
_SNAPSHOT = (
    "SELECT opted_out, n_hour, n_day, newest FROM"
    " (SELECT EXISTS (SELECT 1 FROM suppressions WHERE mailbox IN (%(mb)s, '*')"
    " AND entry IN (%(address)s, %(domain)s)) AS opted_out) AS s,"
    " (SELECT count(*) FILTER (WHERE replied_at >= %(hour)s) AS n_hour, count(*) AS n_day"
    " FROM history WHERE mailbox = %(mb)s AND replied_at >= %(day)s) AS c,"
    " (SELECT coalesce(json_object_agg(rule_handle, last), '{}') AS newest FROM"
    " (SELECT rule_handle, max(replied_at) AS last FROM history WHERE mailbox = %(mb)s"
    " AND sender_key = %(address)s GROUP BY rule_handle) AS t) AS n"
)


class DecisionHistory:
    """The HistoryView of one decision of one mailbox at `now`.

    The first question naming a sender (decide asks whether it opted out before anything
    else) reads everything the later ones can ask in one round trip; the answers are those of
    the store at that moment. The pipeline holds the mailbox's lock from the decision to its
    record, so nothing of this host changes them meanwhile, and another host's reply is
    caught by the claim in the record transaction, as with reads one by one. Any other
    question (another mailbox, sender or window) goes to the store.
    """

    def __init__(self, db: PgDatabase, store: HistoryView, mailbox: str, now: datetime) -> None:
        self._db = db
        self._store = store
        self._mailbox = mailbox
        self._now = now
        self._sender: str | None = None
        self._suppressed = False
        self._counts: dict[float, int] = {}
        self._newest: dict[str, float] = {}
        self.reads = 0  # round trips made (tests and benchmarks)

    def _load(self, sender: str) -> None:
        if self._sender is not None:
            return
        address = sender.strip().lower()
        hour, day = to_ts(self._now - HOUR), to_ts(self._now - DAY)
        with self._db.query("read the history") as conn:
            row: Any = conn.execute(_SNAPSHOT, {
                "mb": self._mailbox, "address": address, "domain": "@" + address.rpartition("@")[2],
                "hour": hour, "day": day}).fetchone()
        self.reads += 1
        self._sender = address
        self._suppressed = bool(row[0])
        self._counts = {hour: int(row[1]), day: int(row[2])}
        self._newest = {str(k): float(v) for k, v in (row[3] or {}).items()}

    def is_suppressed(self, mailbox: str, address: str) -> bool:
        if mailbox != self._mailbox:
            return self._store.is_suppressed(mailbox, address)
        self._load(address)
        if self._sender != address.strip().lower():
            return self._store.is_suppressed(mailbox, address)
        return self._suppressed

    def replied_since(self, mailbox: str, sender_key: str, rule_handle: str, since: datetime) -> bool:
        if mailbox != self._mailbox:
            return self._store.replied_since(mailbox, sender_key, rule_handle, since)
        self._load(sender_key)
        if self._sender != sender_key:  # the history keeps sender keys as given
            return self._store.replied_since(mailbox, sender_key, rule_handle, since)
        newest = self._newest.get(rule_handle)
        return newest is not None and newest >= to_ts(since)

    def replies_since(self, mailbox: str, since: datetime) -> int:
        count = self._counts.get(to_ts(since)) if mailbox == self._mailbox else None
        return self._store.replies_since(mailbox, since) if count is None else count
