"""`awayd away`, `back` and `status`: switch the owner's absence on and off without editing YAML."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from jinja2 import TemplateSyntaxError

from awayd.adapters.store_api import state_exists
from awayd.cli.absence_view import describe_absence, mailbox_status, read_absences, status_text
from awayd.config.load import load_config
from awayd.config.model import Config, Mailbox
from awayd.core.absence import OwnerAbsence, make_absence, span, template_rule, with_absence
from awayd.errors import ConfigError, StateError, UsageError


def _now() -> datetime:
    return datetime.now(UTC)


def _mailbox(config: Config, name: str, command: str) -> Mailbox:
    mailbox = config.mailbox(name)
    if mailbox is None:
        known = ", ".join(m.name for m in config.mailboxes)
        raise UsageError(f"awayd {command}: no mailbox named {name!r} (known: {known})")
    return mailbox


def parse_point(value: str, option: str, mailbox: Mailbox) -> date | datetime:
    """A date (a whole local day of the mailbox) or an ISO 8601 datetime (naive = local)."""
    text = value.strip()
    try:
        if "T" in text or " " in text:
            moment = datetime.fromisoformat(text)
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=mailbox.timezone)
        return date.fromisoformat(text)
    except ValueError as err:
        raise UsageError(f"awayd away: {option}: expected a date such as 2026-12-20 or a time "
                         f"such as 2026-12-20T14:00, found {value!r}") from err


def parse_reply_to(value: str) -> str:
    """`bob@example.org` or `Bob Martin <bob@example.org>`: one deliverable address (no DNS)."""
    _name, address = parseaddr(value)
    try:
        if "\r" in value or "\n" in value or not address:
            raise EmailNotValidError("not an address")
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as err:
        raise UsageError(f"awayd away: --reply-to: expected an address such as "
                         f"'Bob Martin <bob@example.org>', found {value!r} ({err})") from err
    return value.strip()


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"awayd away: --text {path}: expected UTF-8 text: {err}") from err
    except OSError as err:
        raise ConfigError(f"awayd away: --text {path}: cannot read: {err.strerror or err}") from err


def _render_problems(config: Config, mailbox: Mailbox, absence: OwnerAbsence, where: str) -> list[str]:
    from awayd.config.check import trial_render  # noqa: PLC0415

    effective = with_absence(mailbox, absence)
    return [f"{where}: {message}" for _key, message in trial_render(effective, effective.rules[0])]


def _open_existing(config: Config, command: str) -> Any:
    """The store, opened for writing, only if it exists: admin commands never create it (an
    admin's file would belong to root and lock the daemon's user out)."""
    from awayd.adapters.store_api import open_store  # noqa: PLC0415

    path = config.state.path
    if not state_exists(config.state):
        raise StateError(f"awayd {command}: no state yet at {path}: start the daemon once (it "
                         "creates the state as its own user), then run this again")
    return open_store(config.state)


def cmd_away(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.adapters.store_absence import set_absence  # noqa: PLC0415

    config = load_config(config_path)
    mailbox = _mailbox(config, args.mailbox, "away")
    now = _now()
    start = (parse_point(args.start, "--from", mailbox) if args.start
             else now.astimezone(mailbox.timezone).date())
    until = parse_point(args.until, "--until", mailbox)
    begins, ends = span(start, until, mailbox.timezone)
    if ends <= now:
        raise UsageError(f"awayd away: --until {args.until} is already over")
    if ends <= begins:
        raise UsageError(f"awayd away: --until {args.until} is before --from {args.start or start}")
    reply_to = parse_reply_to(args.reply_to) if args.reply_to else None
    if not args.text and template_rule(mailbox) is None and mailbox.language != "en":
        # the built-in text is English: it would go out labelled as the mailbox's language
        raise UsageError(f"awayd away: mailbox {mailbox.name} (language {mailbox.language}) has "
                         "no `kind: absence` rule to take texts from: give --text FILE")
    text = read_text(args.text) if args.text else None
    try:
        absence = make_absence(mailbox.name, start, until, now, text=text, reply_to=reply_to)
    except TemplateSyntaxError as err:
        raise ConfigError(f"awayd away: --text {args.text}: line {err.lineno}: expected a valid "
                          f"template, found: {err.message}") from err
    where = f"awayd away: --text {args.text}" if args.text else "awayd away: the borrowed texts"
    problems = _render_problems(config, mailbox, absence, where)
    if problems:
        raise ConfigError(problems)
    store = _open_existing(config, "away")
    with store:
        set_absence(store.db, absence)
    print(f"mailbox {mailbox.name}: {describe_absence(absence, mailbox, now)}")
    print("a running daemon uses it from the next message on")
    return 0


def cmd_back(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.adapters.store_absence import end_absence  # noqa: PLC0415

    config = load_config(config_path)
    mailbox = _mailbox(config, args.mailbox, "back")
    if not state_exists(config.state):
        print(f"mailbox {mailbox.name}: no owner absence (no decisions recorded yet)")
        return 0
    store = _open_existing(config, "back")
    with store:
        back = end_absence(store.db, mailbox.name)
    what = "owner absence ended" if back.ended else "no owner absence was set"
    print(f"mailbox {mailbox.name}: {what}; forgot {back.forgotten} reply record(s), "
          "so everyone is answered again by the next absence")
    return 0


def cmd_status(args: argparse.Namespace, config_path: Path) -> int:
    config = load_config(config_path)
    absences, problem = read_absences(config.state)
    if problem is not None:
        print(f"awayd status: {problem}", file=sys.stderr)
    now = _now()
    if args.json:
        for mb in config.mailboxes:
            st = mailbox_status(mb, absences.get(mb.name), now)
            print(json.dumps(st.as_dict(now), ensure_ascii=False))
        return 0
    if not state_exists(config.state):
        print(f"state {config.state.path}: none yet (no decisions recorded yet)")
    print(status_text(config, absences, now))
    return 0
