"""awayd.adapters.imap against a real Dovecot on 127.0.0.1: TLS, login, read-only fetches, IDLE."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import trustme
from structlog.testing import capture_logs

from awayd.adapters.imap import FETCH_BATCH, TEXT_PEEK_BYTES, FolderWatcher, append_message
from awayd.config.model import ImapSettings, Security
from awayd.errors import SourceError
from tests.integration.dovecot import PASSWORD, Dovecot, free_port

pytestmark = pytest.mark.integration

MakeWatcher = Callable[..., FolderWatcher]


def message(n: int, to: str, body: bytes = b"Hello, are you there?\r\n") -> bytes:
    head = (
        f"From: Bob Martin <bob@example.net>\r\nTo: {to}\r\nSubject: test {n}\r\n"
        f"Message-ID: <{n}.{uuid.uuid4().hex}@example.net>\r\n"
        "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n"
    )
    return head.encode() + body


def flags(dovecot: Dovecot, user: str, folder: str = "INBOX") -> dict[int, frozenset[bytes]]:
    """Every message's flags, read through EXAMINE; \\Recent is per session, so left out."""
    with dovecot.imap_client(user) as client:
        client.select_folder(folder, readonly=True)
        found = client.fetch(client.search(["ALL"]), ["FLAGS"])
    return {uid: frozenset(f for f in item[b"FLAGS"] if f != b"\\Recent") for uid, item in found.items()}


@pytest.fixture
def watcher(dovecot: Dovecot) -> Iterator[MakeWatcher]:
    """Makes FolderWatchers and closes them after the test."""
    made: list[FolderWatcher] = []

    def make(settings: ImapSettings, folder: str = "INBOX", **kwargs: Any) -> FolderWatcher:
        made.append(FolderWatcher(settings, folder, **kwargs))
        return made[-1]

    yield make
    for each in made:
        each.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


# -- connecting --------------------------------------------------------------------------


def test_plain_login_to_loopback_reports_the_folder_uids(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    dovecot.deliver(mail_user, message(1, mail_user))
    with dovecot.imap_client(mail_user) as client:
        info = client.select_folder("INBOX", readonly=True)
    w = watcher(dovecot.imap_settings(mail_user))
    status = w.connect()
    assert w.connected
    assert status.uidvalidity == info[b"UIDVALIDITY"]
    assert status.uidnext == info[b"UIDNEXT"] == 2
    assert w.status() == status


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_verified_against_the_configured_ca_file(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher, security: Security
) -> None:
    w = watcher(dovecot.imap_settings(mail_user, security=security, ca_file=dovecot.cert_path))
    assert w.connect().uidnext == 1
    assert w.fetch_new(0) == []


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_certificate_from_another_ca_is_a_permanent_error(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher, security: Security, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    w = watcher(dovecot.imap_settings(mail_user, security=security, ca_file=other_ca))
    with pytest.raises(SourceError, match="not trusted") as info:
        w.connect()
    assert not info.value.transient
    assert not w.connected


def test_disabled_verification_connects_and_warns(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    w = watcher(dovecot.imap_settings(mail_user, security="tls", verify=False))
    with capture_logs() as logs:
        w.connect()
    assert [(e["event"], e["log_level"], e["host"]) for e in logs] == [
        ("imap.tls_verify_disabled", "warning", "127.0.0.1")
    ]


def test_wrong_password_is_permanent_and_names_host_and_user_not_the_password(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("wrong-Secret-4711\n")
    w = watcher(dovecot.imap_settings(mail_user, password_file=wrong))
    with pytest.raises(SourceError) as info:
        w.connect()
    text = str(info.value)
    assert not info.value.transient
    assert f"127.0.0.1:{dovecot.imap_port}" in text
    assert mail_user in text
    assert "AUTHENTICATIONFAILED" in text
    assert "wrong-Secret-4711" not in text
    assert not w.connected


def test_xoauth2_uses_the_token_printed_by_the_command(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    command = (sys.executable, "-c", f"print({PASSWORD!r})")
    settings = dataclasses.replace(
        dovecot.imap_settings(mail_user), password=None, oauth2_token_command=command
    )
    w = watcher(settings)
    assert w.connect().uidnext == 1
    assert wait_until(lambda: f"Login: user=<{mail_user}>, method=XOAUTH2" in dovecot.log_text())


def test_failing_token_command_is_permanent(dovecot: Dovecot, mail_user: str, watcher: MakeWatcher) -> None:
    command = (sys.executable, "-c", "raise SystemExit(3)")
    settings = dataclasses.replace(
        dovecot.imap_settings(mail_user), password=None, oauth2_token_command=command
    )
    with pytest.raises(SourceError, match="oauth2") as info:
        watcher(settings).connect()
    assert not info.value.transient
    assert "status 3" in str(info.value)


def test_plain_imap_to_a_remote_host_is_refused_before_connecting(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    w = watcher(dovecot.imap_settings(mail_user, host="imap.example.org"))
    with pytest.raises(SourceError, match="loopback") as info:
        w.connect()
    assert not info.value.transient


def test_unreadable_password_file_is_permanent(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher, tmp_path: Path
) -> None:
    w = watcher(dovecot.imap_settings(mail_user, password_file=tmp_path / "missing.pass"))
    with pytest.raises(SourceError, match=r"missing\.pass") as info:
        w.connect()
    assert not info.value.transient


def test_missing_folder_is_permanent(dovecot: Dovecot, mail_user: str, watcher: MakeWatcher) -> None:
    w = watcher(dovecot.imap_settings(mail_user), "No/Such/Folder")
    with pytest.raises(SourceError, match="No/Such/Folder") as info:
        w.connect()
    assert not info.value.transient
    assert not w.connected


def test_refused_connection_is_transient(dovecot: Dovecot, mail_user: str) -> None:
    settings = dataclasses.replace(dovecot.imap_settings(mail_user), port=free_port())
    with FolderWatcher(settings) as w, pytest.raises(SourceError) as info:
        w.connect()
    assert info.value.transient


def test_methods_of_an_unconnected_watcher_raise_a_transient_error(dovecot: Dovecot, mail_user: str) -> None:
    w = FolderWatcher(dovecot.imap_settings(mail_user))
    for call in (lambda: w.wait(0.1), lambda: w.fetch_new(0), w.status):
        with pytest.raises(SourceError, match="not connected") as info:
            call()
        assert info.value.transient
    w.close()


# -- reading without side effects -------------------------------------------------------


def test_examine_and_peek_leave_every_flag_unchanged(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    for n in range(1, 4):
        dovecot.deliver(mail_user, message(n, mail_user))
    with dovecot.imap_client(mail_user) as client:
        client.select_folder("INBOX")
        client.add_flags([2], [b"\\Flagged", b"$Important"])
        client.add_flags([3], [b"\\Seen", b"\\Answered"])
    before = flags(dovecot, mail_user)
    assert before[1] == frozenset()

    w = watcher(dovecot.imap_settings(mail_user))
    w.connect()
    assert len(w.fetch_new(0, with_text=True)) == 3
    w.wait(0.2)
    w.status()
    w.close()

    assert flags(dovecot, mail_user) == before


def test_fetch_new_returns_exactly_the_newer_messages_as_delivered(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    for n in range(1, 4):
        dovecot.deliver(mail_user, message(n, mail_user), mail_from=f"sender{n}@example.net")
    w = watcher(dovecot.imap_settings(mail_user))
    w.connect()

    got = w.fetch_new(1)

    assert [m.uid for m in got] == [2, 3]
    for n, m in zip((2, 3), got, strict=True):
        assert m.raw.startswith(f"Return-Path: <sender{n}@example.net>\r\n".encode())
        assert f"Delivered-To: {mail_user}\r\n".encode() in m.raw
        assert f"Subject: test {n}\r\n".encode() in m.raw
        assert m.raw.endswith(b"\r\n\r\n")  # header only
        assert m.internaldate.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - m.internaldate) < timedelta(minutes=5)
    assert w.fetch_new(3) == []
    assert w.fetch_new(99) == []  # `4:*` would still match UID 3


def test_internaldate_is_converted_to_utc(dovecot: Dovecot, mail_user: str, watcher: MakeWatcher) -> None:
    stored = datetime(2026, 3, 1, 9, 30, 15, tzinfo=timezone(timedelta(hours=2)))
    with dovecot.imap_client(mail_user) as client:
        client.append("INBOX", message(1, mail_user), msg_time=stored)
    w = watcher(dovecot.imap_settings(mail_user))
    w.connect()
    [m] = w.fetch_new(0)
    assert m.internaldate == datetime(2026, 3, 1, 7, 30, 15, tzinfo=UTC)
    assert m.internaldate.tzinfo is UTC


def test_with_text_appends_the_first_kib_of_the_body(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    body = b"".join(b"line %04d of a long message\r\n" % i for i in range(200))
    dovecot.deliver(mail_user, message(1, mail_user, body))
    w = watcher(dovecot.imap_settings(mail_user))
    w.connect()
    [head] = w.fetch_new(0)
    [full] = w.fetch_new(0, with_text=True)
    assert full.raw == head.raw + body[:TEXT_PEEK_BYTES]


def test_fetch_new_pages_through_more_than_one_batch(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    total = 1200
    dovecot.append(mail_user, (message(n, mail_user) for n in range(total)))
    w = watcher(dovecot.imap_settings(mail_user))
    w.connect()

    sizes, last = [], 0
    while batch := w.fetch_new(last):
        assert [m.uid for m in batch] == list(range(last + 1, last + 1 + len(batch)))
        sizes.append(len(batch))
        last = batch[-1].uid
    assert sizes == [FETCH_BATCH, FETCH_BATCH, total - 2 * FETCH_BATCH]

    everything = w.fetch_new(0, limit=total)  # several UID FETCH commands in one call
    assert [m.uid for m in everything] == list(range(1, total + 1))
    assert w.fetch_new(0, limit=7)[-1].uid == 7


# -- waiting for mail --------------------------------------------------------------------


def test_idle_wakes_on_an_lmtp_delivery(dovecot: Dovecot, mail_user: str, watcher: MakeWatcher) -> None:
    w = watcher(dovecot.imap_settings(mail_user))
    status = w.connect()
    assert w.uses_idle
    assert w.fetch_new(status.uidnext - 1) == []
    assert w.wait(0.3) is False

    delivery = threading.Timer(0.2, dovecot.deliver, (mail_user, message(1, mail_user)))
    started = time.monotonic()
    delivery.start()
    try:
        woke = w.wait(10)  # Dovecot announces about 0.5 s after the delivery
    finally:
        delivery.join()
    assert woke
    assert time.monotonic() - started < 5
    assert [m.uid for m in w.fetch_new(status.uidnext - 1)] == [status.uidnext]
    assert w.wait(0.3) is False


def test_mail_that_arrives_between_waits_is_announced_by_the_next_wait(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    w = watcher(dovecot.imap_settings(mail_user))
    w.connect()
    assert w.fetch_new(0) == []
    dovecot.deliver(mail_user, message(1, mail_user))
    started = time.monotonic()
    assert w.wait(5)
    assert time.monotonic() - started < 0.4  # the NOOP before IDLE, not IDLE's 0.5 s delay
    assert [m.uid for m in w.fetch_new(0)] == [1]
    dovecot.deliver(mail_user, message(2, mail_user))
    assert w.wait(0)  # a check without entering IDLE
    assert [m.uid for m in w.fetch_new(1)] == [2]
    assert w.wait(0) is False


def test_mail_stored_while_idling_is_fetched_or_announced_at_once(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    """A UID SEARCH may run before the server synced the new message into the session; then
    the EXISTS that follows it must make the very next wait() return True."""
    w = watcher(dovecot.imap_settings(mail_user))
    w.connect()
    assert w.wait(0.2) is False  # IDLE stays open
    dovecot.deliver(mail_user, message(1, mail_user))
    uids = [m.uid for m in w.fetch_new(0)]
    if not uids:
        started = time.monotonic()
        assert w.wait(5)
        assert time.monotonic() - started < 0.4  # faster than Dovecot's IDLE notification
        uids = [m.uid for m in w.fetch_new(0)]
    assert uids == [1]


def test_idle_is_reissued_and_keeps_working(dovecot: Dovecot, mail_user: str, watcher: MakeWatcher) -> None:
    w = watcher(dovecot.imap_settings(mail_user), idle_refresh=0.3)
    w.connect()
    started = time.monotonic()
    assert w.wait(1.2) is False  # spans four IDLE commands
    assert 1.1 < time.monotonic() - started < 3
    dovecot.deliver(mail_user, message(1, mail_user))
    assert w.wait(5)
    assert [m.uid for m in w.fetch_new(0)] == [1]


def test_polling_mode_notices_a_delivery_with_noop(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    w = watcher(dovecot.imap_settings(mail_user, idle=False))
    w.connect()
    assert not w.uses_idle
    started = time.monotonic()
    assert w.wait(30) is False
    assert time.monotonic() - started < 1  # a NOOP, no sleeping
    dovecot.deliver(mail_user, message(1, mail_user))
    assert wait_until(lambda: w.wait(0), timeout=5, step=0.1)
    assert [m.uid for m in w.fetch_new(0)] == [1]
    assert w.wait(0) is False


def test_close_while_idling_is_quick_and_idempotent(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    w = watcher(dovecot.imap_settings(mail_user))
    w.connect()
    w.wait(0.2)
    started = time.monotonic()
    w.close()
    w.close()
    assert time.monotonic() - started < 1
    assert not w.connected
    assert wait_until(lambda: "Logged out" in dovecot.log_text().split(f"imap({mail_user})")[-1])


def test_watchers_reconnect_after_a_server_restart(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    idle = watcher(dovecot.imap_settings(mail_user))
    poll = watcher(dovecot.imap_settings(mail_user, idle=False))
    before = idle.connect()
    poll.connect()
    assert idle.wait(0.2) is False

    dovecot.restart()

    for w in (idle, poll):
        with pytest.raises(SourceError) as info:
            w.wait(5)
        assert info.value.transient
        assert not w.connected
        assert w.connect() == before  # same UIDVALIDITY, nothing new
    dovecot.deliver(mail_user, message(1, mail_user))
    assert idle.wait(5)
    assert wait_until(lambda: poll.wait(0))
    assert [m.uid for m in idle.fetch_new(before.uidnext - 1)] == [before.uidnext]


def test_a_session_killed_without_bye_is_a_transient_error(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    w = watcher(dovecot.imap_settings(mail_user))
    w.connect()
    assert w.wait(0.2) is False
    login = re.compile(rf"Login: user=<{re.escape(mail_user)}>.* mpid=(\d+)")
    assert wait_until(lambda: bool(login.findall(dovecot.log_text())))
    [pid] = login.findall(dovecot.log_text())
    os.kill(int(pid), signal.SIGKILL)  # the imap process of this session, no BYE sent

    started = time.monotonic()
    with pytest.raises(SourceError, match="connection lost") as info:
        w.wait(10)
    assert info.value.transient
    assert time.monotonic() - started < 2
    assert not w.connected
    w.connect()
    assert w.wait(0.2) is False


def test_status_follows_deliveries(dovecot: Dovecot, mail_user: str, watcher: MakeWatcher) -> None:
    w = watcher(dovecot.imap_settings(mail_user))
    first = w.connect()
    dovecot.deliver(mail_user, message(1, mail_user))
    dovecot.deliver(mail_user, message(2, mail_user))
    assert w.status() == (first.uidvalidity, first.uidnext + 2)


# -- saving a copy -----------------------------------------------------------------------


def test_append_stores_a_seen_copy_and_keeps_the_watch(
    dovecot: Dovecot, mail_user: str, watcher: MakeWatcher
) -> None:
    with dovecot.imap_client(mail_user) as client:
        client.create_folder("Sent")
    settings = dovecot.imap_settings(mail_user)
    w = watcher(settings)
    w.connect()

    w.append("Sent", message(1, "bob@example.net"))
    append_message(settings, "Sent", message(2, "bob@example.net"))

    assert flags(dovecot, mail_user, "Sent") == {1: {b"\\Seen"}, 2: {b"\\Seen"}}
    with pytest.raises(SourceError, match="Missing") as info:
        w.append("Missing", message(3, "bob@example.net"))
    assert not info.value.transient
    assert w.connected
    assert w.fetch_new(0) == []
