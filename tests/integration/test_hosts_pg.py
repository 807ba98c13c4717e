"""Several real `awayd run` processes on one PostgreSQL: a host killed mid-burst, a paused host."""

from __future__ import annotations

import signal
import uuid
from collections import defaultdict
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon import Daemon, Daemons, mailbox, message, write_config
from tests.integration.dovecot import DOMAIN, Dovecot
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration
LEASE = "3s"


def held(d: Daemon) -> set[str]:
    """The mailboxes `d` holds now, from its lease events in log order."""
    boxes: set[str] = set()
    for event in d.events():
        name = event.get("event")
        if name == "lease.acquired":
            boxes |= set(event["mailboxes"])
        elif name in ("lease.lost", "lease.released"):
            boxes -= set(event["mailboxes"])
    return boxes


def hosts_config(tmp_path: Path, dovecot: Dovecot, sink: SmtpSink, url: str,
                 count: int) -> tuple[Path, list[str]]:
    users = [dovecot.add_user(f"h-{uuid.uuid4().hex[:10]}@{DOMAIN}") for _ in range(count)]
    config = write_config(tmp_path / "awayd.yaml", sink=sink, state_url=url,
                          mailboxes=[mailbox(f"m{n}", u, dovecot) for n, u in enumerate(users)])
    text = config.read_text().replace("  retry_base:", f"  lease: {LEASE}\n  retry_base:", 1)
    config.write_text(text)
    return config, users


def replies(sink: SmtpSink) -> dict[tuple[str, str], list[str]]:
    """Message-IDs of the replies per (mailbox address, recipient)."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for mail in sink.messages:
        msg = message_from_bytes(mail.content, policy=policy.default)
        found[(str(msg["From"].addresses[0].addr_spec), mail.rcpt_tos[0])].append(str(msg["Message-ID"]))
    return found


def wait_split(daemons: list[Daemon], boxes: int) -> None:
    """Until the live daemons hold every mailbox between them, none twice, each at least one."""
    def split() -> bool:
        sets = [held(d) for d in daemons]
        return (all(sets) and sum(len(s) for s in sets) == boxes
                and len(set().union(*sets)) == boxes)
    daemons[0].wait_until(split, f"{boxes} mailboxes split between {len(daemons)} hosts")


def test_three_hosts_share_the_mailboxes_and_survive_a_kill_mid_burst(
    dovecot: Dovecot, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path, pg_url: str,
) -> None:
    config, users = hosts_config(tmp_path, dovecot, smtp_sink, pg_url, 6)
    first = daemons.start(config)
    first.wait_for("checkpoint.created", count=6)  # the first host starts every mailbox
    others = [daemons.start(config), daemons.start(config)]
    hosts = [first, *others]
    wait_split(hosts, 6)
    senders = [f"s{n}@example.net" for n in range(5)]
    victim = hosts[1]
    for n, sender in enumerate(senders):
        for user in users:
            dovecot.deliver(user, message(sender, user, f"burst {n}"), sender)
        if n == 1:
            victim.wait_until(lambda: len(smtp_sink.messages) >= 4, "some replies")
            victim.kill()  # kill -9, mid-burst
    survivors = [first, others[1]]
    wanted = {(u, s) for u in users for s in senders}
    survivors[0].wait_until(lambda: wanted <= set(replies(smtp_sink)), "a reply to every message")
    got = replies(smtp_sink)
    assert set(got) == wanted  # 0 drops, no stray reply
    for key, ids in got.items():
        # a second copy only from the kill between the relay's 250 and the `sent` commit:
        # the same reply, resent with its Message-ID
        assert len(set(ids)) == 1, (key, ids)
    # the killed host's mailboxes were taken over: every mailbox answers again
    wait_split(survivors, 6)
    for user in users:
        dovecot.deliver(user, message("late@example.net", user, "after"), "late@example.net")
    survivors[0].wait_until(
        lambda: {(u, "late@example.net") for u in users} <= set(replies(smtp_sink)),
        "every mailbox answered after the kill")
    for d in survivors:
        assert d.stop() == 0


def test_a_paused_owner_is_fenced_and_never_sends_after_a_takeover(
    dovecot: Dovecot, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path, pg_url: str,
) -> None:
    config, [user] = hosts_config(tmp_path, dovecot, smtp_sink, pg_url, 1)
    stale = daemons.start(config)
    stale.wait_for("checkpoint.created")
    other = daemons.start(config)
    other.wait_for("lease.host")
    assert held(stale) == {"m0"}
    stale.signal(signal.SIGSTOP)  # a split brain in the making: it still believes it owns m0
    try:
        dovecot.deliver(user, message("bob@example.net", user, "while paused"), "bob@example.net")
        other.wait_for("lease.acquired", mailboxes=["m0"])
        other.wait_for("reply.sent")
    finally:
        stale.signal(signal.SIGCONT)
    seen: dict[str, Any] = {}
    stale.wait_until(lambda: bool(stale.events("lease.lost") or stale.events("lease.fenced")),
                     "the stale host noticing it lost m0")
    seen["lost"] = stale.events("lease.lost")
    dovecot.deliver(user, message("carol@example.net", user, "after"), "carol@example.net")
    other.wait_for("reply.sent", count=2)
    got = replies(smtp_sink)
    assert {k: len(v) for k, v in got.items()} == {(user, "bob@example.net"): 1,
                                                  (user, "carol@example.net"): 1}
    assert stale.events("reply.sent") == []  # the stale owner sent nothing, before or after
    assert stale.events("message.processed") == []
    assert seen["lost"] or stale.events("lease.fenced")
    assert stale.stop() == 0
    assert other.stop() == 0
