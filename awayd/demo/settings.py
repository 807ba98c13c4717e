"""The demo's sample configuration: one mailbox on the embedded servers, away from today."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from awayd.demo.samples import ADDRESS

FALLBACK_ZONE = "Europe/Paris"
RULE = "away"
TEXT = """\
Hello {{ sender.first_name }},

thank you for your message "{{ subject }}". I am away until {{ rule.until | date("long") }}
and will read it when I am back. For anything urgent, please write to Bob Martin
(bob@example.org).

Alice
"""


@dataclass(frozen=True)
class DemoSettings:
    """Everything the demo's servers and daemon share; all of it on 127.0.0.1."""

    folder: Path
    imap_port: int
    smtp_port: int
    password: str
    timezone: str
    start: date
    until: date

    @property
    def config_path(self) -> Path:
        return self.folder / "config.yaml"


def local_zone() -> str:
    """The IANA name of this machine's zone (TZ, /etc/localtime, /etc/timezone), else Paris."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(os.readlink("/etc/localtime").partition("zoneinfo/")[2])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        if not name or name.startswith("/"):
            continue
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return FALLBACK_ZONE


def away_dates(today: date) -> tuple[date, date]:
    """Away since yesterday, back in a week: the rule is active whatever the hour."""
    return today - timedelta(days=1), today + timedelta(days=7)


def config_document(s: DemoSettings) -> dict[str, object]:
    return {
        "state": {"path": str(s.folder / "state.db")},
        "smtp": {"host": "127.0.0.1", "port": s.smtp_port, "security": "none", "timeout": "10s"},
        "mailboxes": [{
            "name": "alice",
            "address": ADDRESS,
            "display_name": "Alice Martin",
            "timezone": s.timezone,
            "language": "en",
            "internal_domains": ["example.org"],
            "imap": {"host": "127.0.0.1", "port": s.imap_port, "security": "none",
                     "username": ADDRESS, "password_file": str(s.folder / "imap.pass"),
                     "folders": ["INBOX"], "idle": True, "poll_interval": "200ms",
                     "timeout": "10s"},
            "rules": [{
                "name": RULE,
                "when": {"from": s.start, "until": s.until},
                "audience": "everyone",
                "interval": "7d",
                "reply_to": "Bob Martin <bob@example.org>",
                "subject": "Auto: {{ subject }}",
                "text": TEXT,
            }],
        }],
    }


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the reply text) as literal blocks, as a person would."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def write_config(s: DemoSettings) -> Path:
    """Write the password file (0600) and config.yaml into the demo folder."""
    secret = s.folder / "imap.pass"
    secret.touch(mode=0o600)
    secret.write_text(s.password + "\n", encoding="utf-8")
    header = ("# Written by `awayd demo`: the embedded servers listen on 127.0.0.1 only.\n"
              "# Try it: awayd check --config THIS_FILE, awayd explain --config THIS_FILE MSG.eml\n")
    body = yaml.dump(config_document(s), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    s.config_path.write_text(header + body, encoding="utf-8")
    return s.config_path
