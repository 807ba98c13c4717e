"""PostgreSQL: a decision's history in one read, a record refused by the fence as a lease event,
and read-only admin commands on a database the daemon never ran on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from structlog.testing import capture_logs

from awayd.adapters.leases_pg import Fence, LeaseTable
from awayd.adapters.store_api import Fenced
from awayd.adapters.store_pg import PostgresStore
from awayd.adapters.store_rows import OutboxDraft, Reservation
from awayd.cli.main import main
from awayd.config.load import parse_config
from awayd.outbox import Outbox
from awayd.pipeline import Incoming, NoEvents, Pipeline

NOW = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
CONFIG = """
smtp: {host: 127.0.0.1, port: 2525, security: none}
mailboxes:
  - name: alice
    address: alice@example.org
    rules: [{name: away, interval: 7d, text: "Away."}]
"""
RAW = (b"Return-Path: <bob@example.net>\r\nFrom: Bob <bob@example.net>\r\n"
       b"To: alice@example.org\r\nSubject: hi\r\nMessage-ID: <m1@example.net>\r\n\r\nbody\r\n")


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    with PostgresStore.open(pg_url) as pg:
        yield pg


def reply(store: PostgresStore, uid: int, sender: str, handle: str, at: datetime,
          mailbox: str = "alice") -> None:
    store.record(mailbox=mailbox, folder="INBOX", uidvalidity=1, uid=uid, at=at, sender=sender,
                 reason="reply", rule="away", message_id=None,
                 reply=OutboxDraft(f"<r{uid}@example.org>", sender, "", b"x"),
                 reservation=Reservation(sender, handle, timedelta(0)))


def test_a_decisions_history_is_read_once_and_answers_as_the_store(store: PostgresStore) -> None:
    for uid, (sender, handle, hours_ago) in enumerate([
            ("bob@example.net", "away#1", 2), ("bob@example.net", "away#1", 30),
            ("bob@example.net", "ack#1", 0.5), ("carol@example.net", "away#1", 0.2),
            ("dan@example.net", "away#1", 23)], start=1):
        reply(store, uid, sender, handle, NOW - timedelta(hours=hours_ago))
    reply(store, 9, "bob@example.net", "away#1", NOW, mailbox="other")
    store.suppress_add("@spam.example", now=NOW)
    store.suppress_add("eve@example.net", now=NOW, mailbox="alice")

    questions: list[tuple[str, tuple[Any, ...]]] = [
        ("is_suppressed", ("alice", "bob@example.net")),
        ("replied_since", ("alice", "bob@example.net", "away#1", NOW - timedelta(hours=3))),
        ("replied_since", ("alice", "bob@example.net", "away#1", NOW - timedelta(hours=1))),
        ("replied_since", ("alice", "bob@example.net", "ack#1", NOW - timedelta(hours=1))),
        ("replied_since", ("alice", "bob@example.net", "gone#1", NOW - timedelta(days=9))),
        ("replies_since", ("alice", NOW - timedelta(hours=1))),
        ("replies_since", ("alice", NOW - timedelta(days=1))),
    ]
    history = store.decision_history("alice", NOW)
    answers = [getattr(history, name)(*args) for name, args in questions]
    assert answers == [getattr(store, name)(*args) for name, args in questions]
    assert answers == [False, True, False, True, False, 2, 4]
    assert history.reads == 1  # every guard of one decision from one query
    # other senders, mailboxes and windows are asked of the store, and answered as it does
    others: list[tuple[str, tuple[Any, ...]]] = [
        ("is_suppressed", ("alice", "eve@example.net")),
        ("is_suppressed", ("other", "x@spam.example")),
        ("replied_since", ("other", "bob@example.net", "away#1", NOW)),
        ("replies_since", ("alice", NOW - timedelta(days=2))),
    ]
    assert [getattr(history, n)(*a) for n, a in others] == [True, True, True, 5]
    suppressed = store.decision_history("alice", NOW)
    assert suppressed.is_suppressed("alice", "Mallory@SPAM.example")


def test_a_record_refused_by_the_fence_is_a_lease_event_not_a_store_failure(
        store: PostgresStore) -> None:
    log = structlog.get_logger("test")
    fence = Fence("host-a", margin=1.0, on_refused=lambda mailbox, action: log.warning(
        "lease.fenced", mailbox=mailbox, action=action))
    store.fence = fence
    for name, epoch in LeaseTable(store.pg, "host-a", 60.0).round(["alice"], {}).gained.items():
        fence.hold(name, epoch + 1)  # a takeover moved the epoch on: the lease is not ours

    class Events(NoEvents):
        store_failures = 0

        def store_failed(self) -> None:
            self.store_failures += 1

    events = Events()
    outbox = Outbox(store=store, clock=lambda: NOW, log=log, make_sender=lambda s: None,
                    events=events)
    pipeline = Pipeline(store=store, clock=lambda: NOW, outbox=outbox, log=log, events=events)
    mailbox = parse_config(CONFIG, "t.yaml").mailboxes[0]
    try:
        with capture_logs() as logs, pytest.raises(Fenced):
            pipeline.process(Incoming(mailbox, "INBOX", 1, 5, NOW, RAW))
    finally:
        outbox.close(1.0)
    assert [(e["event"], e["log_level"], e.get("mailbox")) for e in logs] == [
        ("lease.fenced", "warning", "alice")]
    assert outbox.health.ok
    assert events.store_failures == 0
    assert store.get_checkpoint("alice", "INBOX") is None  # nothing written
    assert store.pending_count() == 0


def test_read_only_commands_on_a_database_the_daemon_never_ran_on(
        pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "awayd.yaml"
    config.write_text(f"state: {{url: '{pg_url}'}}\n" + CONFIG, encoding="utf-8")
    for argv in (["report"], ["report", "--json"], ["suppress", "list"], ["status"]):
        code = main([*argv[:2 if argv[0] == "suppress" else 1], "--config", str(config),
                     *argv[2 if argv[0] == "suppress" else 1:]])
        out, err = capsys.readouterr()
        assert code == 0, (argv, err)
        assert "no decisions recorded yet" in out or argv == ["status"], (argv, out)
        assert err == "", (argv, err)  # status: no "cannot read the absences" either
    with psycopg.connect(pg_url) as conn:  # and nothing was created
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert row == (0,)


class CountingStore(PostgresStore):
    """The real store, counting the outbox reads made on their own."""

    reads = 0

    def get_outbox(self, outbox_id: int) -> Any:
        self.reads += 1
        return super().get_outbox(outbox_id)


class GatedSender:
    """Takes every reply; the first waits until the others are queued behind it."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.sent: list[str] = []

    def send(self, envelope_from: str, recipient: str, message: bytes) -> None:
        self.gate.wait(10)
        self.sent.append(recipient)

    def close(self) -> None:
        pass


def test_the_relay_reads_its_next_reply_while_marking_the_last_one_sent(pg_url: str) -> None:
    senders = [f"s{n}@example.net" for n in range(4)]
    gate = threading.Event()
    sender = GatedSender(gate)
    with CountingStore(PostgresStore.open(pg_url).pg) as store:
        ids = []
        for uid, address in enumerate(senders, start=1):
            ids.append(store.record(
                mailbox="alice", folder="INBOX", uidvalidity=1, uid=uid, at=NOW, sender=address,
                reason="reply", rule="away", message_id=None,
                reply=OutboxDraft(f"<r{uid}@example.org>", address, "", b"Subject: x\r\n\r\nx\r\n")))
        outbox = Outbox(store=store, clock=lambda: NOW, log=structlog.get_logger("test"),
                        make_sender=lambda settings: sender,
                        monotonic=lambda: 0.0)  # a row read ahead never ages here
        outbox.configure(parse_config(CONFIG, "t.yaml").mailboxes)
        try:
            for outbox_id in ids:
                assert outbox_id is not None
                outbox.submit(outbox_id, "alice")
            gate.set()
            deadline = time.monotonic() + 20
            while store.pending_count() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            outbox.close(5.0)
        assert sender.sent == senders  # each once, in order
        assert store.pending_count() == 0
        # the first reply is read on its own, each other one with the previous one's mark
        assert store.reads == 1
