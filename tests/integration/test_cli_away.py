"""`awayd away`, `back` and `status` on a real SQLite state file, and the daemon's absence cache."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from awayd.adapters.store_absence import AbsenceCache, read_absences, set_absence
from awayd.adapters.store_rows import OutboxDraft, Reservation
from awayd.adapters.store_sqlite import SqliteStore
from awayd.cli.main import main
from awayd.core.absence import make_absence

CONFIG = """
state: {path: state.db}
mailboxes:
  - name: alice
    address: alice@example.org
    timezone: Europe/Paris
    language: fr
    rules:
      - name: holidays
        when: {from: 2030-07-01, until: 2030-07-31}
        interval: 3d
        text: "Bonjour {{ sender.first_name }}, absente jusqu'au {{ rule.until | date('long') }}."
  - name: support
    address: support@example.org
    language: fr
    rules: [{name: ack, kind: acknowledgement, text: "Reçu."}]
"""

LUNCH = (b"Return-Path: <bob@example.net>\r\nFrom: Bob Martin <bob@example.net>\r\n"
         b"To: alice@example.org\r\nSubject: Lunch\r\nMessage-ID: <lunch.1@example.net>\r\n"
         b"\r\nOn se voit demain ?\r\n")


def today() -> date:
    return datetime.now(UTC).date()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def state(config: Path) -> Path:
    """The state file as the daemon's first start leaves it."""
    path = config.parent / "state.db"
    SqliteStore.open(path).close()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_away_stores_the_absence_and_status_check_explain_and_report_show_it(
    config: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    until = (today() + timedelta(days=10)).isoformat()
    code, out, _ = run(capsys, "away", "alice", "--until", until, "--config", str(config))
    assert code == 0, out
    assert f"until {until}" in out
    code, out, _ = run(capsys, "status", "--json", "--config", str(config))
    alice, support = (json.loads(line) for line in out.splitlines())
    assert alice["absence"]["until"] == until
    assert alice["active_rule"] == "owner-absence"
    assert support["absence"] is None
    assert support["active_rule"] == "ack"
    code, out, _ = run(capsys, "check", "--config", str(config))
    assert code == 0
    assert f"owner absence from {today().isoformat()} until {until}" in out
    (config.parent / "lunch.eml").write_bytes(LUNCH)
    code, out, _ = run(capsys, "explain", "--json", "--config", str(config),
                       str(config.parent / "lunch.eml"))
    decision = json.loads(out)
    assert (decision["reason"], decision["rule"]) == ("reply", "owner-absence")
    assert decision["reply"]["text"].startswith("Bonjour Bob, absente jusqu'au")
    code, out, _ = run(capsys, "report", "--json", "--config", str(config))
    assert "alice" in json.loads(out)["absences"]


def test_back_ends_the_absence_and_forgets_who_the_mailbox_answered(
    config: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    with SqliteStore.open(state) as store:
        set_absence(store.db, make_absence("alice", today(), today() + timedelta(days=3), now))
        for uid, (mailbox, sender) in enumerate([("alice", "bob@example.net"),
                                                 ("alice", "carol@example.net"),
                                                 ("support", "bob@example.net")], start=1):
            store.record(mailbox=mailbox, folder="INBOX", uidvalidity=1, uid=uid, at=now,
                         sender=sender, reason="reply", rule="r", message_id=f"<{uid}@x>",
                         reply=OutboxDraft(f"<r{uid}@x>", sender, "", b"x"),
                         reservation=Reservation(sender, "r:1"))
    code, out, _ = run(capsys, "back", "alice", "--config", str(config))
    assert code == 0
    assert "owner absence ended; forgot 2 reply record(s)" in out
    with SqliteStore.open(state, readonly=True) as store:
        assert read_absences(store.db) == {}
        assert store.replied_since("support", "bob@example.net", "r:1", now - timedelta(1))
        assert not store.replied_since("alice", "bob@example.net", "r:1", now - timedelta(1))
    code, out, _ = run(capsys, "back", "alice", "--config", str(config))
    assert "no owner absence was set" in out


@pytest.mark.parametrize(("argv", "code", "says"), [
    (["away", "nobody", "--until", "2099-01-01"], 2, "awayd away: no mailbox named 'nobody'"),
    (["away", "alice", "--until", "2099-02-30"], 2, "--until: expected a date"),
    (["away", "alice", "--until", "tomorrow"], 2, "--until: expected a date"),
    (["away", "alice", "--from", "2099-01-10", "--until", "2099-01-09"], 2, "is before --from"),
    (["away", "alice", "--until", "2000-01-01"], 2, "is already over"),
    (["away", "alice", "--until", "2099-01-01", "--reply-to", "bob at example"], 2, "--reply-to"),
    (["away", "alice", "--until", "2099-01-01", "--text", "missing.txt"], 78, "cannot read"),
    (["away", "alice", "--until", "2099-01-01", "--text", "latin1.txt"], 78, "expected UTF-8"),
    (["away", "alice", "--until", "2099-01-01", "--text", "syntax.txt"], 78, "valid template"),
    (["away", "alice", "--until", "2099-01-01", "--text", "undefined.txt"], 78, "'sendr' is undefined"),
    (["away", "alice", "--until", "2099-01-01", "--text", "."], 78, "cannot read"),
    (["back", "nobody"], 2, "awayd back: no mailbox named 'nobody'"),
    (["away", "support", "--until", "2099-01-01"], 2, "has no `kind: absence` rule"),
    (["away", "alice"], 2, "awayd away: error: the following arguments are required: --until"),
])
def test_away_and_back_refuse_bad_input_before_writing_anything(
    config: Path, state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    argv: list[str], code: int, says: str
) -> None:
    monkeypatch.chdir(config.parent)
    (config.parent / "latin1.txt").write_bytes("Absente jusqu'à lundi".encode("latin-1"))
    (config.parent / "syntax.txt").write_text("Hello {{ sender.name", encoding="utf-8")
    (config.parent / "undefined.txt").write_text("Hello {{ sendr.name }}", encoding="utf-8")
    try:
        got = main([*argv, "--config", str(config)])
    except SystemExit as exit_:  # argparse's own usage errors
        got = exit_.code  # type: ignore[assignment]
    _out, err = capsys.readouterr()
    assert got == code, err
    assert says in err
    assert "Traceback" not in err
    with SqliteStore.open(state, readonly=True) as store:
        assert read_absences(store.db) == {}


def test_away_text_file_and_reply_to_are_stored_and_used(
    config: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = config.parent / "away.txt"
    text.write_text("Absente, écrivez à Bob.\n", encoding="utf-8")
    code, _, err = run(capsys, "away", "alice", "--from", "2030-01-01", "--until", "2030-01-05T12:00",
                       "--text", str(text), "--reply-to", "Bob Martin <bob@example.org>",
                       "--config", str(config))
    assert code == 0, err
    with SqliteStore.open(state, readonly=True) as store:
        absence = read_absences(store.db)["alice"]
    assert absence.start == date(2030, 1, 1)
    assert absence.until == datetime.fromisoformat("2030-01-05T12:00+01:00")
    assert (absence.text, absence.reply_to) == ("Absente, écrivez à Bob.\n", "Bob Martin <bob@example.org>")


def test_admin_commands_before_the_first_run_never_create_the_state(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = config.parent / "state.db"
    for argv, code in ((["report"], 0), (["status"], 0), (["check"], 0),
                       (["forget", "--mailbox", "alice", "bob@example.net"], 0),
                       (["suppress", "list"], 0), (["back", "alice"], 0),
                       (["suppress", "add", "bob@example.net"], 78),
                       (["away", "alice", "--until", "2099-01-01"], 78)):
        got, out, err = run(capsys, *argv, "--config", str(config))
        assert got == code, (argv, err)
        assert "no decisions recorded yet" in out + err or argv == ["check"] or "no state yet" in err
        assert not state.exists(), argv


def test_suppress_list_filters_by_mailbox(
    config: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["add", "a@example.net"], ["add", "--mailbox", "alice", "b@example.net"],
                 ["add", "--mailbox", "support", "c@example.net"]):
        assert run(capsys, "suppress", *argv, "--config", str(config))[0] == 0
    _, out, _ = run(capsys, "suppress", "list", "--mailbox", "alice", "--config", str(config))
    assert [line.split("\t")[0] for line in out.splitlines()] == ["a@example.net", "b@example.net"]
    code, _, err = run(capsys, "suppress", "list", "--mailbox", "nobody", "--config", str(config))
    assert code == 2
    assert "awayd suppress list: no mailbox named 'nobody'" in err


def test_absence_cache_reads_the_table_at_most_once_per_max_age(state: Path) -> None:
    clock = [100.0]
    with SqliteStore.open(state) as store:
        cache = AbsenceCache(store.db, max_age=1.0, monotonic=lambda: clock[0])
        assert cache.get("alice") is None
        set_absence(store.db, make_absence("alice", date(2030, 1, 1), date(2030, 1, 2),
                                           datetime.now(UTC)))
        clock[0] += 0.5
        assert cache.get("alice") is None  # still the snapshot of 0.5 s ago
        clock[0] += 0.5
        first = cache.get("alice")
        assert first is not None
        clock[0] += 1.0
        assert cache.get("alice") is first  # unchanged row: the compiled value is kept


def test_absence_cache_keeps_the_last_view_when_the_database_cannot_be_read(state: Path) -> None:
    errors: list[str] = []
    clock = [0.0]
    with SqliteStore.open(state) as store:
        set_absence(store.db, make_absence("alice", date(2030, 1, 1), date(2030, 1, 2),
                                           datetime.now(UTC)))
        cache = AbsenceCache(store.db, monotonic=lambda: clock[0], on_error=errors.append)
        assert cache.get("alice") is not None
        conn = sqlite3.connect(state)
        conn.execute("UPDATE absences SET starts = 'garbage'")
        conn.commit()
        conn.close()
        clock[0] += 2
        assert cache.get("alice") is None
        clock[0] += 2
        cache.get("alice")
    assert len(errors) == 1  # an unreadable row is reported once, not every second
    assert "awayd back alice" in errors[0]
