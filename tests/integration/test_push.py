"""Push mode against Dovecot running contrib/dovecot (Lua push_notification driver over LMTP)."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.daemon import Daemon, Daemons, message, rule, to_one
from tests.integration.dovecot import (
    DOMAIN,
    MASTER_USER,
    Dovecot,
    free_port,
    push_unavailable_reason,
    unavailable_reason,
)
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration

TOKEN = "push-token-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def push_dovecot() -> Iterator[tuple[Dovecot, int]]:
    """A Dovecot whose deliveries POST to awayd's endpoint on the returned port."""
    reason = unavailable_reason() or push_unavailable_reason()
    if reason is not None:
        if os.environ.get("AWAYD_REQUIRE_DOVECOT") == "1":
            pytest.fail(f"AWAYD_REQUIRE_DOVECOT=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    port = free_port()
    server = Dovecot.create(push=(f"http://127.0.0.1:{port}/events", TOKEN))
    try:
        server.start()
        yield server, port
    finally:
        server.cleanup()


def push_config(tmp_path: Path, dovecot: Dovecot, port: int, sink: SmtpSink, users: list[str],
                *, sweep: str = "1h", imap: dict[str, dict[str, Any]] | None = None) -> Path:
    """Every user in push mode through the master user; `imap` adds to a user's own imap."""
    token = tmp_path / "push.token"
    token.write_text(TOKEN + "\n", encoding="utf-8")
    path = tmp_path / "awayd.yaml"
    path.write_text(yaml.safe_dump({
        "state": {"path": str(tmp_path / "state.db"), "retry_base": "0.5s"},
        "smtp": {"host": sink.host, "port": sink.port, "security": "none"},
        "push": {"listen": f"127.0.0.1:{port}", "token_file": str(token),
                 "sweep_interval": sweep},
        "defaults": {
            "timezone": "Europe/Paris",
            "imap": {"host": dovecot.host, "port": dovecot.imap_port, "security": "none",
                     "master_user": MASTER_USER,
                     "master_password_file": str(dovecot.master_password_file), "push": True},
            "rules": [rule()],
        },
        "mailboxes": [{"name": u.split("@")[0], "address": u,
                       **({"imap": (imap or {})[u]} if u in (imap or {}) else {})} for u in users],
    }), encoding="utf-8")
    return path


def users(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"p{i}-{tag}@{DOMAIN}" for i in range(n)]


def started(daemons: Daemons, config: Path, folders: int) -> Daemon:
    d = daemons.start(config)
    d.wait_for("push.listening")
    d.wait_for("checkpoint.created", count=folders)
    return d


def post(port: int, body: Any, token: str = TOKEN) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/events", data=data, method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def status(dovecot: Dovecot, user: str) -> tuple[int, int]:
    with dovecot.imap_client(user) as client:
        found = client.folder_status("INBOX", [b"UIDVALIDITY", b"UIDNEXT"])
    return int(found[b"UIDVALIDITY"]), int(found[b"UIDNEXT"])


def test_a_delivery_is_answered_through_the_push_event(
        push_dovecot: tuple[Dovecot, int], smtp_sink: SmtpSink, daemons: Daemons,
        tmp_path: Path) -> None:
    """No IDLE, no poll, the sweep an hour away: only the Lua driver's event can wake awayd."""
    dovecot, port = push_dovecot
    a, b = users(2)
    d = started(daemons, push_config(tmp_path, dovecot, port, smtp_sink, [a, b]), folders=2)
    dovecot.deliver(a, message("bob@example.net", a, "Lunch?"), "bob@example.net")
    dovecot.deliver(b, message("carol@example.com", b, "Quote"), "carol@example.com")
    dovecot.deliver(a, message("bob@example.net", a, "Lunch again?"), "bob@example.net")
    d.wait_for("reply.sent", count=2)
    processed = d.wait_for("message.processed", count=3)
    assert sorted((e["mailbox"], e["uid"], e["reason"]) for e in processed) == sorted([
        (a.split("@")[0], 1, "reply"), (a.split("@")[0], 2, "already-replied"),
        (b.split("@")[0], 1, "reply")])
    assert len(to_one(smtp_sink.messages, "bob@example.net")) == 1
    assert len(to_one(smtp_sink.messages, "carol@example.com")) == 1
    assert len(d.events("push.swept")) == 1  # the start only
    assert not d.events("imap.failed")
    assert not d.events("imap.idle_unsupported")  # push mode never IDLEs: nothing to warn about


def test_bad_events_are_refused_or_ignored_and_never_answered_twice(
        push_dovecot: tuple[Dovecot, int], smtp_sink: SmtpSink, daemons: Daemons,
        tmp_path: Path) -> None:
    dovecot, port = push_dovecot
    (a,) = users(1)
    d = started(daemons, push_config(tmp_path, dovecot, port, smtp_sink, [a]), folders=1)
    dovecot.deliver(a, message("bob@example.net", a), "bob@example.net")
    d.wait_for("reply.sent")
    uidvalidity, uidnext = status(dovecot, a)
    event = {"event": "MessageNew", "folder": "INBOX", "uid": uidnext - 1,
             "uidvalidity": uidvalidity}

    assert post(port, {"user": a, "events": [event]}, token="wrong") == 401
    assert post(port, b"{not json") == 400
    assert post(port, {"user": a, "events": [{**event, "uid": "7"}]}) == 400
    assert post(port, {"user": a, "events": [event]}) == 202  # a replay
    assert post(port, {"user": "nobody@" + DOMAIN, "events": [event]}) == 202
    assert post(port, {"user": a, "events": [{**event, "uid": uidnext + 50}]}) == 202
    assert post(port, {"user": a, "events": [{**event, "uidvalidity": uidvalidity + 1}]}) == 202
    assert post(port, {"user": a, "events": [{**event, "folder": "Junk"}]}) == 202
    d.wait_for("push.already_processed")
    d.wait_for("push.unknown_user")
    d.wait_for("push.uid_not_found", uid=uidnext + 50)
    d.wait_for("push.uidvalidity_mismatch")
    d.wait_for("push.folder_ignored")
    assert [e["status"] for e in d.events("push.refused")] == [401, 400, 400]
    assert len(d.events("message.processed")) == 1
    assert len(smtp_sink.messages) == 1
    assert TOKEN not in d.log_text()


def test_a_message_without_an_event_is_answered_by_the_sweep(
        push_dovecot: tuple[Dovecot, int], smtp_sink: SmtpSink, daemons: Daemons,
        tmp_path: Path) -> None:
    """An APPEND raises no MessageNew (like an event lost on the way): the sweep answers it,
    and a delivery after it is answered by its event, each message once."""
    dovecot, port = push_dovecot
    (a,) = users(1)
    d = started(daemons, push_config(tmp_path, dovecot, port, smtp_sink, [a], sweep="1s"),
                folders=1)
    raw = message("bob@example.net", a, "Appended").replace(
        b"From: ", b"Return-Path: <bob@example.net>\r\nFrom: ", 1)
    dovecot.append(a, [raw])
    d.wait_for("reply.sent")
    dovecot.deliver(a, message("carol@example.com", a), "carol@example.com")
    d.wait_for("reply.sent", count=2)
    d.wait_for("push.swept", count=3)
    assert sorted(e["uid"] for e in d.events("message.processed")) == [1, 2]
    assert sorted(m.rcpt_tos for m in smtp_sink.messages) == [
        ("bob@example.net",), ("carol@example.com",)]


def test_an_event_also_processes_an_earlier_message_whose_event_was_lost(
        push_dovecot: tuple[Dovecot, int], smtp_sink: SmtpSink, daemons: Daemons,
        tmp_path: Path) -> None:
    """UID 1 comes without an event, UID 2 with one: the event processes the folder from its
    checkpoint, so both are answered, in UID order, with the sweep an hour away."""
    dovecot, port = push_dovecot
    (a,) = users(1)
    d = started(daemons, push_config(tmp_path, dovecot, port, smtp_sink, [a]), folders=1)
    raw = message("bob@example.net", a, "No event").replace(
        b"From: ", b"Return-Path: <bob@example.net>\r\nFrom: ", 1)
    dovecot.append(a, [raw])
    dovecot.deliver(a, message("carol@example.com", a), "carol@example.com")
    d.wait_for("reply.sent", count=2)
    assert [(e["uid"], e["sender"]) for e in d.events("message.processed")] == [
        (1, "bob@example.net"), (2, "carol@example.com")]
    assert len(d.events("push.swept")) == 1


def test_an_event_dropped_while_awayd_was_down_is_answered_by_the_sweep(
        push_dovecot: tuple[Dovecot, int], smtp_sink: SmtpSink, daemons: Daemons,
        tmp_path: Path) -> None:
    """Dovecot's POST fails (nothing listens: the event is lost, the delivery goes on); the
    sweep at the next start answers the message, once."""
    dovecot, port = push_dovecot
    (a,) = users(1)
    config = push_config(tmp_path, dovecot, port, smtp_sink, [a])
    first = started(daemons, config, folders=1)
    assert first.stop() == 0
    before = dovecot.log_text().count("awayd push:")
    dovecot.deliver(a, message("bob@example.net", a, "While you were down"), "bob@example.net")
    assert dovecot.log_text().count("awayd push:") == before + 1  # the script logged the lost POST
    second = daemons.start(config)
    second.wait_for("reply.sent")
    second.wait_for("push.swept")
    assert [(e["uid"], e["reason"]) for e in second.events("message.processed")] == [(1, "reply")]
    assert len(smtp_sink.messages) == 1


def appended(sender: str, user: str, subject: str) -> bytes:
    """A message for IMAP APPEND: it raises no MessageNew event, so only a sweep finds it."""
    return message(sender, user, subject).replace(
        b"From: ", f"Return-Path: <{sender}>\r\nFrom: ".encode(), 1)


def logins(dovecot: Dovecot, user: str) -> int:
    return dovecot.log_text().count(f"Login: user=<{user}>")


def test_a_reload_sweeps_only_the_mailboxes_that_are_new_or_changed(
        push_dovecot: tuple[Dovecot, int], smtp_sink: SmtpSink, daemons: Daemons,
        tmp_path: Path) -> None:
    """SIGHUP with one mailbox kept as it was, one whose IMAP settings changed, one removed and
    one added: only the changed and the added one are examined at once; the kept one waits for
    the periodic sweep (an hour away), so its message that came without an event stays
    unanswered; the endpoint keeps listening; the added mailbox is caught up from the reload
    on (a message without an event, then one with, are both answered)."""
    dovecot, port = push_dovecot
    kept, changed, removed, added = users(4)
    config = push_config(tmp_path, dovecot, port, smtp_sink, [kept, changed, removed])
    d = started(daemons, config, folders=3)
    d.wait_for("push.swept")
    dovecot.append(kept, [appended("bob@example.net", kept, "No event, kept")])
    dovecot.append(changed, [appended("carol@example.com", changed, "No event, changed")])
    before = {u: logins(dovecot, u) for u in (kept, changed, added)}
    push_config(tmp_path, dovecot, port, smtp_sink, [kept, changed, added],
                imap={changed: {"timeout": "20s"}})
    d.signal(signal.SIGHUP)
    [reloaded] = d.wait_for("push.reloaded")
    assert (reloaded["before"], reloaded["folders"], reloaded["sweep_now"]) == (3, 3, 2)
    swept = d.wait_for("push.swept", count=2)[-1]
    assert (swept["scope"], swept["folders"], swept["failed"]) == ("changed", 2, 0)
    d.wait_for("reply.sent")
    assert [(e["mailbox"], e["uid"], e["sender"]) for e in d.events("message.processed")] == [
        (changed.split("@")[0], 1, "carol@example.com")]
    assert [e["mailbox"] for e in d.events("checkpoint.created")][3:] == [added.split("@")[0]]
    assert logins(dovecot, kept) == before[kept]  # not looked at
    assert logins(dovecot, changed) > before[changed]
    assert logins(dovecot, added) > before[added]

    dovecot.append(added, [appended("dave@example.org", added, "No event, added")])
    dovecot.deliver(added, message("erin@example.net", added), "erin@example.net")
    d.wait_for("reply.sent", count=3)
    assert sorted((e["mailbox"], e["uid"]) for e in d.events("message.processed")) == sorted([
        (changed.split("@")[0], 1), (added.split("@")[0], 1), (added.split("@")[0], 2)])
    uidvalidity, _ = status(dovecot, kept)
    assert post(port, {"user": removed, "events": [
        {"event": "MessageNew", "folder": "INBOX", "uid": 1, "uidvalidity": uidvalidity}]}) == 202
    d.wait_for("push.unknown_user", user=removed)
    assert len(d.events("push.listening")) == 1  # the endpoint was not restarted
    assert len(d.events("push.swept")) == 2
    assert not d.events("message.processed", mailbox=kept.split("@")[0])
    assert len(smtp_sink.messages) == 3
