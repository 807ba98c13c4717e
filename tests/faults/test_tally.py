"""The fault suite's own arithmetic: what counts as a drop, and which duplicates are allowed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.faults.harness import format_table, tally
from tests.integration.smtpsink import ReceivedMail


def reply(recipient: str, message_id: str) -> ReceivedMail:
    content = f"To: {recipient}\r\nMessage-ID: {message_id}\r\n\r\nAway.\r\n".encode()
    return ReceivedMail("", (recipient,), content, (), (), 0.0)


def state_with(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, recipient, message_id, state)")
    conn.executemany("INSERT INTO outbox (recipient, message_id, state) VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return path


def test_a_sender_without_reply_or_recorded_failure_is_a_drop(tmp_path: Path) -> None:
    state = state_with(tmp_path / "s.db", [("c@x.net", "<3@a>", "failed")])
    got = tally("t", ["a@x.net", "b@x.net", "c@x.net"], [reply("a@x.net", "<1@a>")], state,
                set(), 0.0)
    assert (got.replies, got.failed, got.drops) == (1, 1, 1)
    assert not got.ok


def test_a_resend_with_the_same_message_id_after_a_kill_in_the_window_is_allowed(
    tmp_path: Path
) -> None:
    state = state_with(tmp_path / "s.db", [])
    mails = [reply("a@x.net", "<1@a>"), reply("a@x.net", "<1@a>")]
    inside = tally("t", ["a@x.net"], mails, state, {"<1@a>"}, 0.0)
    assert (inside.dup_in_window, inside.dup_outside, inside.ok) == (1, 0, True)
    outside = tally("t", ["a@x.net"], mails, state, set(), 0.0)
    assert (outside.dup_in_window, outside.dup_outside, outside.ok) == (0, 1, False)


def test_two_different_replies_to_one_sender_are_never_in_the_window(tmp_path: Path) -> None:
    state = state_with(tmp_path / "s.db", [])
    mails = [reply("a@x.net", "<1@a>"), reply("a@x.net", "<2@a>")]
    got = tally("t", ["a@x.net"], mails, state, {"<1@a>", "<2@a>"}, 0.0)
    assert (got.dup_in_window, got.dup_outside) == (0, 1)


def test_the_table_has_a_row_per_outcome_under_its_header(tmp_path: Path) -> None:
    state = state_with(tmp_path / "s.db", [])
    rows = [tally(name, ["a@x.net"], [reply("a@x.net", "<1@a>")], state, set(), 0.0)
            for name in ("one", "two")]
    lines = format_table(rows).splitlines()
    assert lines[0].startswith("| scenario")
    assert set(lines[1]) <= {"|", "-"}
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["one", "two"]
