"""Mailbox leases on a real PostgreSQL: fair shares, takeover after expiry, and the fence."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from awayd.adapters.leases_pg import Fence, LeaseTable
from awayd.adapters.store_pg import Fenced, PostgresStore
from awayd.adapters.store_pg_schema import PgDatabase
from awayd.adapters.store_sqlite import OutboxDraft, Reservation

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
BOXES = ["a", "b", "c", "d"]


class Host:
    """One host's view: its store (with the fence) and its lease table."""

    def __init__(self, url: str, name: str, period: float, margin: float) -> None:
        self.refused: list[tuple[str, str]] = []
        self.fence = Fence(name, margin, on_refused=lambda m, what: self.refused.append((m, what)))
        self.store = PostgresStore.open(url)
        self.store.fence = self.fence
        self.table = LeaseTable(PgDatabase(url, readonly=False), name, period)

    def round(self) -> tuple[list[str], list[str]]:
        """One lease round applied to the fence; returns (gained, lost)."""
        result = self.table.round(BOXES, self.fence.held())
        for name in (*result.lost, *result.excess):
            self.fence.drop(name)
        if result.excess:
            self.table.release({n: result.kept[n] for n in result.excess})
        for name, epoch in result.gained.items():
            self.fence.hold(name, epoch)
        return sorted(result.gained), [*result.lost, *result.excess]

    def record(self, mailbox: str, uid: int) -> int | None:
        return self.store.record(
            mailbox=mailbox, folder="INBOX", uidvalidity=1, uid=uid, at=T0, sender="bob@example.net",
            reason="reply", rule="away", message_id=None,
            reply=OutboxDraft(f"<r{uid}@x>", "bob@example.net", "", b"Subject: x\r\n\r\nx"),
            reservation=Reservation("bob@example.net", f"away#{uid}", timedelta(days=7)))

    def close(self) -> None:
        self.store.close()
        self.table.db.close()


@pytest.fixture
def hosts(pg_url: str) -> Iterator[Callable[..., Host]]:
    made: list[Host] = []

    def make(name: str, period: float = 30.0, margin: float = 10.0) -> Host:
        made.append(Host(pg_url, name, period, margin))
        return made[-1]

    yield make
    for host in made:
        host.close()


def test_a_second_host_gets_a_fair_share(hosts: Callable[..., Host]) -> None:
    a, b = hosts("A"), hosts("B")
    assert a.round() == (BOXES, [])  # alone: everything
    assert b.round() == ([], [])  # all held: B waits
    gained, released = a.round()  # A sees two hosts and lets its excess go
    assert (gained, sorted(released)) == ([], ["c", "d"])
    assert b.round() == (["c", "d"], [])
    assert sorted(a.fence.held()) == ["a", "b"]
    assert a.round() == ([], [])  # stable
    assert b.round() == ([], [])


def test_an_expired_lease_is_taken_over_with_a_new_epoch_and_the_old_owner_is_fenced(
        hosts: Callable[..., Host]) -> None:
    a = hosts("A", period=1.0, margin=0.3)
    b = hosts("B", period=1.0, margin=0.3)
    a.round()
    outbox_id = a.record("a", 1)
    assert outbox_id is not None
    epoch = a.fence.epoch("a")
    time.sleep(1.2)  # A stops renewing (paused, partitioned): its leases run out
    gained, _ = b.round()
    assert gained == BOXES
    assert b.fence.epoch("a") == (epoch or 0) + 1
    # A still believes it holds "a" (its fence was not told): the store refuses anyway
    with pytest.raises(Fenced):
        a.record("a", 2)
    assert a.store.get_outbox(outbox_id) is None  # the pending reply is not A's to send
    assert ("a", "record") in a.refused
    assert ("a", "send") in a.refused
    # B, the owner now, sees the reply and records
    row = b.store.get_outbox(outbox_id)
    assert row is not None
    assert row.state == "pending"
    assert [r.id for r in b.store.due_outbox(T0)] == [outbox_id]
    assert b.record("a", 2) is not None
    # A's next round tells it what it lost
    assert sorted(a.round()[1]) == BOXES


def test_a_lease_within_its_margin_of_expiry_refuses_writes(hosts: Callable[..., Host]) -> None:
    a = hosts("A", period=1.0, margin=0.8)
    a.round()
    assert a.record("a", 1) is not None
    time.sleep(0.4)  # 0.6 s left, less than the margin: stop before anyone else may start
    with pytest.raises(Fenced):
        a.record("a", 2)
    a.round()  # renewed: writes go on
    assert a.record("a", 3) is not None


def test_without_a_lease_nothing_is_recorded_or_queued(hosts: Callable[..., Host]) -> None:
    a = hosts("A")
    with pytest.raises(Fenced):
        a.record("a", 1)
    assert a.store.due_outbox(T0) == []
    assert a.store.pending_count() == 0


def test_leases_let_go_while_the_database_was_away_are_claimed_again_with_a_new_epoch(
        hosts: Callable[..., Host]) -> None:
    a = hosts("A")
    a.round()
    epochs = a.fence.held()
    for name in BOXES:  # what the keeper does when it cannot renew in time
        a.fence.drop(name)
    gained, lost = a.round()
    assert (gained, lost) == (BOXES, [])
    assert a.fence.held() == {name: epoch + 1 for name, epoch in epochs.items()}


def test_a_lease_run_out_but_not_taken_over_is_renewed_with_the_same_epoch(
        hosts: Callable[..., Host]) -> None:
    a = hosts("A", period=1.0, margin=0.3)
    a.round()
    epochs = a.fence.held()
    time.sleep(1.2)  # the round came late (a busy host): out, but nobody claimed it meanwhile
    with pytest.raises(Fenced):
        a.record("a", 1)
    assert a.round() == ([], [])  # kept: no worker restart
    assert a.fence.held() == epochs
    assert a.record("a", 2) is not None


def test_renew_extends_only_the_leases_still_held_with_the_same_epoch(hosts: Callable[..., Host]) -> None:
    a = hosts("A", period=1.0, margin=0.3)
    b = hosts("B", period=1.0, margin=0.3)
    a.round()
    time.sleep(1.2)
    b.round()  # B takes everything over: new epochs
    assert a.table.renew(a.fence.held()) == 0
    with pytest.raises(Fenced):
        a.record("a", 1)
    time.sleep(0.4)
    assert b.table.renew(b.fence.held()) == len(BOXES)
    time.sleep(0.4)  # 0.2 s left of the claim, within the margin: writes go on only if renewed
    assert b.record("a", 1) is not None


def test_a_host_below_its_share_learns_when_the_next_lease_of_another_runs_out(
        hosts: Callable[..., Host]) -> None:
    a, b = hosts("A", period=30.0), hosts("B", period=30.0)
    a.round()
    result = b.table.round(BOXES, b.fence.held())
    assert result.gained == {}  # all held by A, which B counts as live
    assert result.next_free is not None
    assert 0 < result.next_free <= 30.0
    assert a.table.round(BOXES, a.fence.held()).next_free is None  # A holds its share and more
