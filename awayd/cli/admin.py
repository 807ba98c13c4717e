"""`awayd report`, `forget` and `suppress`: read and edit the state store from the command line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TextIO

from awayd.config.read import as_address, as_duration
from awayd.errors import UsageError


def parse_since(value: str, now: datetime) -> datetime:
    try:
        return now - as_duration(value)
    except (ValueError, TypeError) as err:
        raise UsageError(f"awayd report: --since: expected a duration such as 7d or 24h, "
                         f"found {value!r}") from err


def normalise_entry(entry: str, command: str = "suppress") -> str:
    """A suppression entry: an address or @domain, lowercased; anything else is a usage error."""
    text = entry.strip().lower()
    if text.startswith("@") and "." in text and " " not in text:
        return text
    try:
        return as_address(text)
    except (ValueError, TypeError) as err:
        raise UsageError(f"awayd {command}: expected an address or @domain, found {entry!r}") from err


def print_report(report: Any, out: TextIO, *, as_json: bool,
                 absences: Mapping[str, str] | None = None) -> None:
    """The report; `absences` maps a mailbox to the description of its owner absence."""
    absences = absences or {}
    if as_json:
        data = report.as_dict()
        data["absences"] = dict(absences)
        out.write(json.dumps(data, ensure_ascii=False) + "\n")
        return
    out.write(f"since {report.since:%Y-%m-%d %H:%M %Z}\n")
    for name, described in sorted(absences.items()):
        out.write(f"mailbox {name}: {described}\n")
    if not report.mailboxes:
        out.write("no decisions recorded\n")
    for mb in report.mailboxes:
        o = mb.outbox
        out.write(f"\nmailbox {mb.mailbox}: {mb.decisions} messages; replies sent {o.sent}, "
                  f"failed {o.failed}, dropped {o.dropped}, pending {o.pending}\n")
        out.write("  by reason:\n")
        for rc in mb.reasons:
            out.write(f"    {rc.reason:<26} {rc.count:>7}\n")
        if mb.rules:
            out.write("  by rule:\n")
            for rr in mb.rules:
                out.write(f"    {rr.rule:<26} {rr.decisions:>7} decisions, {rr.replies} replies, "
                          f"{rr.outbox.sent} sent, {rr.outbox.failed} failed\n")
