"""Fault-suite tools: bursts of mail, counting replies per sender, servers that misbehave.

Every scenario ends in an Outcome: for each expected sender, how many replies reached the
SMTP sink. A sender without a reply and without a recorded permanent failure (5xx) is a
drop. A second reply is a duplicate; it is inside the documented window (DESIGN §7: between
the server's 250 and the commit of `sent`) only when every copy carries the same Message-ID
and a kill left that reply's outbox row pending after the sink had taken it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.daemon import header, message
from tests.integration.dovecot import HOST, Dovecot
from tests.integration.smtpsink import ReceivedMail, SmtpSink

#: Longest wait for a scenario's replies; generous for a loaded 2-core machine.
SETTLE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Outcome:
    """One row of the fault table."""

    scenario: str
    messages: int
    replies: int
    failed: int  # permanent SMTP failures, recorded and logged: not drops
    drops: int
    dup_in_window: int
    dup_outside: int
    seconds: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.drops == 0 and self.dup_outside == 0


TABLE_HEADER = ("scenario", "messages", "replies", "failed (5xx)", "drops",
                "duplicates in window", "duplicates outside", "seconds")


def format_table(outcomes: Iterable[Outcome]) -> str:
    """A Markdown table of `outcomes`, the form README's fault table takes."""
    rows = [TABLE_HEADER] + [
        (o.scenario, str(o.messages), str(o.replies), str(o.failed), str(o.drops),
         str(o.dup_in_window), str(o.dup_outside), f"{o.seconds:.1f}") for o in outcomes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def senders(tag: str, count: int) -> list[str]:
    return [f"{tag}-{i}@example.net" for i in range(count)]


def deliver_burst(dovecot: Dovecot, user: str, addresses: Sequence[str]) -> None:
    """LMTP-deliver one message from each address to `user`, back to back."""
    for address in addresses:
        dovecot.deliver(user, message(address, user, f"Burst {address}"), address)


def outbox(state: Path) -> list[tuple[str, str, str]]:
    """(recipient, message_id, state) of every outbox row, read without writing anything new."""
    if not state.exists():
        return []
    conn = sqlite3.connect(state.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT recipient, message_id, state FROM outbox ORDER BY id").fetchall()
    finally:
        conn.close()
    return [(str(r), str(m), str(s)) for r, m, s in rows]


def in_window(state: Path, mails: Iterable[ReceivedMail]) -> set[str]:
    """After a kill: Message-IDs the sink took whose outbox row is still pending."""
    taken = {header(m.content, "Message-ID") for m in mails}
    return {mid for _, mid, st in outbox(state) if st == "pending" and mid in taken}


def failed_recipients(state: Path) -> set[str]:
    return {r for r, _, st in outbox(state) if st == "failed"}


def wait_settled(mails: Callable[[], list[ReceivedMail]], expected: Sequence[str], state: Path,
                 *, timeout: float = SETTLE_TIMEOUT) -> None:
    """Until every expected sender has a reply or a failed outbox row (or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answered = {r for m in mails() for r in m.rcpt_tos}
        if not set(expected) - answered - failed_recipients(state):
            return
        time.sleep(0.1)


def tally(scenario: str, expected: Sequence[str], mails: Sequence[ReceivedMail], state: Path,
          window: set[str], started: float, note: str = "") -> Outcome:
    """Count replies, drops and duplicates per expected sender (see the module docstring)."""
    failed = failed_recipients(state)
    replies = drops = dup_in = dup_out = 0
    for address in expected:
        got = [m for m in mails if m.rcpt_tos == (address,)]
        replies += len(got)
        if not got and address not in failed:
            drops += 1
        if len(got) > 1:
            ids = {header(m.content, "Message-ID") for m in got}
            if len(ids) == 1 and ids <= window:
                dup_in += len(got) - 1
            else:
                dup_out += len(got) - 1
    return Outcome(scenario, len(expected), replies, len(failed & set(expected)), drops,
                   dup_in, dup_out, time.monotonic() - started, note)


class HangingServer:
    """Accepts TCP connections on `port` and never says a word (an SMTP relay that hangs)."""

    def __init__(self, port: int) -> None:
        self.host = HOST
        self.port = port
        self._listener = socket.create_server((HOST, port))
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)

    @property
    def accepted(self) -> int:
        return len(self._conns)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        with contextlib.suppress(OSError):
            self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


class HoldingSink(SmtpSink):
    """A sink that answers DATA `delay` seconds late, and can hold it until `release()`."""

    def __init__(self, *, delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay
        self._open = threading.Event()
        self._open.set()
        self.held = 0

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self._open.is_set():
            self.held += 1
            while not self._open.is_set():
                await asyncio.sleep(0.02)
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def fill(directory: Path) -> Path:
    """Write a file in `directory` until its file system is full; return the file."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as out:
        while True:
            out.write(chunk)
    with contextlib.suppress(OSError), filler.open("ab", buffering=0) as out:
        while True:
            out.write(b"\0" * 512)  # the last partial block too
    return filler
