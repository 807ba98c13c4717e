"""The read-only view of past replies and opt-outs that decide() consults (a port)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class HistoryView(Protocol):
    """What the store knows that a decision depends on. Implementations must not write."""

    def replied_since(self, mailbox: str, sender_key: str, rule_handle: str, since: datetime) -> bool:
        """True when `sender_key` got (or is about to get) `rule_handle`'s reply at or after `since`."""
        ...

    def replies_since(self, mailbox: str, since: datetime) -> int:
        """Replies sent or reserved by `mailbox` at or after `since` (for the hourly/daily cap)."""
        ...

    def is_suppressed(self, mailbox: str, address: str) -> bool:
        """True when `address` (lowercased) or its @domain is on the store's opt-out list."""
        ...


class EmptyHistory:
    """Nobody was answered and nobody opted out: what `explain` assumes without --history."""

    def replied_since(self, mailbox: str, sender_key: str, rule_handle: str, since: datetime) -> bool:
        return False

    def replies_since(self, mailbox: str, since: datetime) -> int:
        return 0

    def is_suppressed(self, mailbox: str, address: str) -> bool:
        return False


class MemoryHistory:
    """An in-memory history, the store's twin for tests and benchmarks."""

    def __init__(self) -> None:
        self.replies: list[tuple[str, str, str, datetime]] = []
        self.suppressed: set[tuple[str, str]] = set()  # (mailbox or "*", address or @domain)

    def add_reply(self, mailbox: str, sender_key: str, rule_handle: str, at: datetime) -> None:
        self.replies.append((mailbox, sender_key, rule_handle, at))

    def replied_since(self, mailbox: str, sender_key: str, rule_handle: str, since: datetime) -> bool:
        return any(
            m == mailbox and s == sender_key and h == rule_handle and at >= since
            for m, s, h, at in self.replies
        )

    def replies_since(self, mailbox: str, since: datetime) -> int:
        return sum(1 for m, _s, _h, at in self.replies if m == mailbox and at >= since)

    def is_suppressed(self, mailbox: str, address: str) -> bool:
        domain = "@" + address.rpartition("@")[2]
        return any(
            m in (mailbox, "*") and entry in (address, domain) for m, entry in self.suppressed
        )
