"""The values the SQLite state store takes and returns (frozen rows, report), and their conversions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

OutboxState = Literal["pending", "sent", "failed", "dropped"]


@dataclass(frozen=True)
class Checkpoint:
    """The last UID handled in a folder, valid while the folder keeps its UIDVALIDITY."""

    uidvalidity: int
    last_uid: int


@dataclass(frozen=True)
class OutboxDraft:
    """A composed reply to queue: sent later with exactly these bytes and envelope."""

    message_id: str
    recipient: str
    envelope_from: str  # "" is the null sender
    message: bytes


@dataclass(frozen=True)
class Reservation:
    """The history row a queued reply holds, so the sender is not answered twice meanwhile."""

    sender_key: str
    rule_handle: str
    # The rule's interval: the reservation is refused (ReplyClaimed) when the sender already
    # holds one of this rule younger than that, whoever made it; 0 checks nothing.
    interval: timedelta = timedelta(0)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    mailbox: str
    folder: str
    uid: int
    rule: str | None
    message_id: str
    recipient: str
    envelope_from: str
    message: bytes
    state: OutboxState
    attempts: int
    next_try: datetime
    created_at: datetime
    last_error: str | None


@dataclass(frozen=True)
class Suppression:
    mailbox: str  # a mailbox name or "*" for every mailbox
    entry: str  # lowercased address or @domain
    added_at: datetime


@dataclass(frozen=True)
class PruneResult:
    """How many rows prune() deleted from each table."""

    history: int
    decisions: int
    outbox: int


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    count: int


@dataclass(frozen=True)
class OutboxCounts:
    """Replies queued in the report window, by what became of them."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    pending: int = 0


@dataclass(frozen=True)
class RuleReport:
    rule: str
    decisions: int  # decisions that named this rule, replies or not (e.g. already-replied)
    replies: int  # decisions to reply
    outbox: OutboxCounts


@dataclass(frozen=True)
class MailboxReport:
    mailbox: str
    decisions: int
    reasons: tuple[ReasonCount, ...]  # most frequent first
    rules: tuple[RuleReport, ...]
    outbox: OutboxCounts = field(default_factory=OutboxCounts)


@dataclass(frozen=True)
class Report:
    """What happened since `since`, per mailbox; `as_dict()` is ready for json.dumps."""

    since: datetime
    mailboxes: tuple[MailboxReport, ...]

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["since"] = self.since.isoformat()
        return data


def normalize_entry(entry: str) -> str:
    """Return a suppression entry lowercased; accept `local@domain` or `@domain`.

    Raises:
        ValueError: anything else.
    """
    normal = entry.strip().lower()
    local, at, domain = normal.rpartition("@")
    if not at or not domain or "@" in local or any(c.isspace() for c in normal):
        raise ValueError(f"suppression entry {entry!r}: expected an address or @domain")
    return normal


def to_ts(moment: datetime) -> float:
    """Epoch seconds of an aware datetime; naive ones are refused rather than guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the store needs aware times")
    return moment.timestamp()


def from_ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


#: The column order outbox_row() expects.
OUTBOX_COLUMNS = (
    "id, mailbox, folder, uid, rule, message_id, recipient, envelope_from, bytes, state,"
    " attempts, next_try, created_at, last_error"
)


def outbox_row(row: tuple[Any, ...], *, state: OutboxState | None = None) -> OutboxRow:
    """An OutboxRow from a row in OUTBOX_COLUMNS order; `state` overrides the stored one."""
    return OutboxRow(
        id=int(row[0]),
        mailbox=str(row[1]),
        folder=str(row[2]),
        uid=int(row[3]),
        rule=None if row[4] is None else str(row[4]),
        message_id=str(row[5]),
        recipient=str(row[6]),
        envelope_from=str(row[7]),
        message=bytes(row[8]),
        state=state if state is not None else row[9],
        attempts=int(row[10]),
        next_try=from_ts(row[11]),
        created_at=from_ts(row[12]),
        last_error=None if row[13] is None else str(row[13]),
    )


def build_report(
    since: datetime,
    reasons: list[tuple[Any, ...]],
    rules: list[tuple[Any, ...]],
    states: list[tuple[Any, ...]],
) -> Report:
    """Assemble a Report from (mailbox, reason, count), (mailbox, rule, count, replies) and
    (mailbox, rule, state, count) rows."""
    by_reason: dict[str, list[ReasonCount]] = {}
    for mailbox, reason, count in reasons:
        by_reason.setdefault(str(mailbox), []).append(ReasonCount(str(reason), int(count)))
    outbox: dict[tuple[str, str | None], dict[str, int]] = {}
    for mailbox, rule, state, count in states:
        outbox.setdefault((str(mailbox), rule), {})[str(state)] = int(count)
    by_rule: dict[str, list[RuleReport]] = {}
    for mailbox, rule, count, replies in rules:
        counts = OutboxCounts(**outbox.get((str(mailbox), rule), {}))
        by_rule.setdefault(str(mailbox), []).append(
            RuleReport(str(rule), int(count), int(replies or 0), counts)
        )
    mailboxes = []
    for mailbox in sorted({*by_reason, *(m for m, _rule in outbox)}):
        counted = sorted(by_reason.get(mailbox, []), key=lambda rc: (-rc.count, rc.reason))
        totals: dict[str, int] = {}
        for (box, _rule), per_state in outbox.items():
            if box == mailbox:
                for state, count in per_state.items():
                    totals[state] = totals.get(state, 0) + count
        mailboxes.append(
            MailboxReport(
                mailbox=mailbox,
                decisions=sum(rc.count for rc in counted),
                reasons=tuple(counted),
                rules=tuple(sorted(by_rule.get(mailbox, []), key=lambda r: r.rule)),
                outbox=OutboxCounts(**totals),
            )
        )
    return Report(since=since, mailboxes=tuple(mailboxes))
