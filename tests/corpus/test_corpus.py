"""The .eml corpus under tests/data is judged exactly as its manifest says, by decide() and explain."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from awayd.config.load import load_config
from awayd.config.model import Mailbox
from awayd.core import reasons
from awayd.core.decide import decide
from awayd.core.history import MemoryHistory

DATA = Path(__file__).resolve().parent.parent / "data"
AT = datetime.fromisoformat("2026-12-22T10:00:00+01:00")
MANIFEST: list[dict[str, Any]] = yaml.safe_load((DATA / "manifest.yaml").read_text())


@pytest.fixture(scope="module")
def mailbox() -> Mailbox:
    return load_config(DATA / "config.yaml").mailboxes[0]


def _history(entry: dict[str, Any], mailbox: Mailbox, sender_key: str) -> MemoryHistory:
    history = MemoryHistory()
    kind = entry.get("history", "none")
    if kind == "replied":
        rule = next(r for r in mailbox.rules if r.name == entry["rule"])
        history.add_reply(mailbox.name, sender_key, rule.handle, AT - timedelta(hours=24))
    elif kind == "cap":
        for i in range(mailbox.max_replies.per_hour):
            history.add_reply(mailbox.name, f"other{i}@example.net", "x", AT - timedelta(minutes=5))
    return history


def test_manifest_lists_every_file_once() -> None:
    listed = [e["file"] for e in MANIFEST]
    assert len(listed) == len(set(listed))
    assert set(listed) == {p.name for p in DATA.glob("*.eml")}
    assert len(listed) >= 150


def test_every_reason_appears_at_least_twice() -> None:
    counts = Counter(e["reason"] for e in MANIFEST)
    missing = {r: counts[r] for r in reasons.ALL if counts[r] < 2}
    assert not missing


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_decision_matches_manifest(entry: dict[str, Any], mailbox: Mailbox) -> None:
    raw = (DATA / entry["file"]).read_bytes()
    probe = decide(raw, mailbox, now=AT, history=MemoryHistory(), new_message_id=lambda d: f"<awayd.t@{d}>")
    history = _history(entry, mailbox, probe.sender_key or "")
    got = decide(raw, mailbox, now=AT, history=history, new_message_id=lambda d: f"<awayd.t@{d}>")
    assert (got.decision, got.reason) == (entry["decision"], entry["reason"]), got.detail
    if "rule" in entry and entry["decision"] == "reply":
        assert got.rule_name == entry["rule"]
    if entry["decision"] == "reply":
        assert got.reply is not None
        assert got.reply.language == entry.get("language", "fr")
        assert got.reply.from_ == entry.get("from", got.reply.from_)
        for name, value in got.reply.headers:
            assert "\r" not in value, name
            assert "\n" not in value, name


def test_explain_json_over_the_corpus_agrees_with_manifest() -> None:
    """One `awayd explain --json` call over the directory; history cases answer (no history)."""
    proc = subprocess.run(
        [sys.executable, "-m", "awayd", "explain", "--config", str(DATA / "config.yaml"),
         "--at", AT.isoformat(), "--json", str(DATA)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    by_file = {Path(obj["file"]).name: obj for obj in lines}
    assert len(by_file) == len(MANIFEST)
    for entry in MANIFEST:
        obj = by_file[entry["file"]]
        expected = ("reply", "reply") if entry.get("history", "none") != "none" else (
            entry["decision"], entry["reason"])
        assert (obj["decision"], obj["reason"]) == expected, entry["file"]
        assert set(obj) == {"file", "mailbox", "decision", "reason", "rule", "detail", "reply"}
        if obj["decision"] == "skip":
            assert obj["reply"] is None
