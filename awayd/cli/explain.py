"""`awayd explain`: run decide() over message files and say why each is or isn't answered."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from awayd.config.model import Mailbox
from awayd.core.absence import OwnerAbsence
from awayd.core.decide import Decision, judge
from awayd.core.history import HistoryView
from awayd.core.message import scrub


@dataclass(frozen=True)
class Unreadable:
    name: str
    error: str


def random_message_id(domain: str) -> str:
    return f"<awayd.{uuid.uuid4().hex}@{domain}>"


def expand(paths: Iterable[str]) -> Iterator[str]:
    """Files as given; a directory stands for the .eml files inside it, in name order."""
    for p in paths:
        path = Path(p)
        if p != "-" and path.is_dir():
            yield from (str(f) for f in sorted(path.glob("*.eml")))
        else:
            yield p


def read_input(name: str, stdin: TextIO) -> bytes | Unreadable:
    if name == "-":
        return stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode()
    try:
        return Path(name).read_bytes()
    except OSError as err:
        return Unreadable(name, err.strerror or str(err))


def to_json(name: str, mailbox: Mailbox, decision: Decision) -> dict[str, object]:
    reply = decision.reply
    body: dict[str, object] | None = None
    if reply is not None:
        body = {
            "envelope_from": reply.envelope_from,
            "envelope_to": reply.envelope_to,
            "from": reply.from_,
            "to": reply.to,
            "subject": reply.subject,
            "language": reply.language,
            "headers": dict(reply.headers),
            "text": reply.text,
            "html": reply.html,
        }
    return {"file": name, "mailbox": mailbox.name, "decision": decision.decision,
            "reason": decision.reason, "rule": decision.rule_name, "detail": decision.detail,
            "reply": body}


def to_text(name: str, mailbox: Mailbox, decision: Decision) -> str:
    head = f"{name}: {decision.decision.upper()} ({decision.reason})"
    lines = [head, f"  mailbox: {mailbox.name}"]
    if decision.sender is not None:
        lines.append(f"  sender:  {decision.sender}")
    if decision.rule_name:
        lines.append(f"  rule:    {decision.rule_name}")
    lines.append(f"  why:     {decision.detail}")
    if decision.reply is not None:
        lines.append("  reply:")
        lines += [f"    {k}: {v}" for k, v in decision.reply.headers]
        lines.append("")
        lines += [f"    {t}" for t in decision.reply.text.rstrip("\n").split("\n")]
        if decision.reply.html is not None:
            lines.append("    (with an HTML alternative)")
    return "\n".join(lines)


def run_explain(files: list[str], mailbox: Mailbox, *, at: datetime, history: HistoryView,
                as_json: bool, out: TextIO, err: TextIO, stdin: TextIO | None = None,
                absence: OwnerAbsence | None = None) -> int:
    """Explain each file; returns 65 if any file could not be read, else 0."""
    stdin = stdin or sys.stdin  # looked up now, not at import: callers may have replaced it
    status = 0
    for name in expand(files or ["-"]):
        raw = read_input(name, stdin)
        if isinstance(raw, Unreadable):
            err.write(f"awayd explain: {raw.name}: cannot read: {raw.error}\n")
            status = 65
            continue
        # the daemon's own path: an error in one message is a decision about it, as in `run`
        decision = judge(raw, mailbox, now=at, history=history,
                         new_message_id=random_message_id, absence=absence).decision
        # scrub: a file name given as undecodable bytes holds surrogates; output stays UTF-8
        if as_json:
            out.write(scrub(json.dumps(to_json(name, mailbox, decision), ensure_ascii=False)) + "\n")
        else:
            out.write(scrub(to_text(name, mailbox, decision)) + "\n\n")
    return status
