"""One function per CLI subcommand: load what it needs, call the module that does the work."""

from __future__ import annotations

import argparse
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from awayd.config.check import summary
from awayd.config.load import load_config
from awayd.core.history import EmptyHistory, HistoryView
from awayd.errors import SourceError, StateError


def _now() -> datetime:
    return datetime.now(UTC)


def cmd_check(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.cli.absence_view import describe_absence, read_absences  # noqa: PLC0415
    from awayd.cli.check_secrets import verify_secrets  # noqa: PLC0415
    from awayd.config.check import rule_warnings  # noqa: PLC0415
    from awayd.config.marks import located, read_text  # noqa: PLC0415

    config = load_config(config_path)
    verify_secrets(config, config_path)
    now = _now()
    for warning in located(config.source, read_text(config_path), rule_warnings(config, now)):
        print(f"warning: {warning}", file=sys.stderr)
    absences, problem = read_absences(config.state)  # read-only; never creates the state
    described = {mb.name: describe_absence(absences[mb.name], mb, now)
                 for mb in config.mailboxes if mb.name in absences}
    print(summary(config, now, described))
    if problem is not None:
        print(f"  (owner absences not read: {problem})")
    if getattr(args, "connect", False):
        from awayd.cli.check_connect import connect_report  # noqa: PLC0415

        return connect_report(config, sys.stdout)
    return 0


def cmd_explain(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.cli.explain import run_explain  # noqa: PLC0415

    config = load_config(config_path)
    if isinstance(sys.stdout, io.TextIOWrapper):  # valid UTF-8 whatever the locale says
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    mailbox = config.mailboxes[0] if not args.mailbox else config.mailbox(args.mailbox)
    if mailbox is None:
        names = ", ".join(m.name for m in config.mailboxes)
        print(f"awayd explain: no mailbox named {args.mailbox!r} (known: {names})", file=sys.stderr)
        return 2
    history: HistoryView = EmptyHistory()
    store = None
    from awayd.adapters.store_api import open_store, state_exists, state_name  # noqa: PLC0415

    if args.history and not state_exists(config.state):
        print(f"awayd explain: --history: no decisions recorded yet ({state_name(config.state)} "
              "does not exist); assuming nobody was answered", file=sys.stderr)
    elif args.history:
        from awayd.adapters.store_api import NoStateYet  # noqa: PLC0415

        try:
            store = open_store(config.state, readonly=True)
            history = store
        except NoStateYet as err:  # a PostgreSQL database the daemon never ran on
            print(f"awayd explain: --history: no decisions recorded yet ({err}); assuming nobody"
                  " was answered", file=sys.stderr)
    from awayd.cli.absence_view import read_absences  # noqa: PLC0415

    absences, problem = read_absences(config.state)
    if problem is not None:
        print(f"awayd explain: owner absences not read: {problem}", file=sys.stderr)
    try:
        return run_explain(args.files, mailbox, at=args.at or _now(), history=history,
                           as_json=args.json, out=sys.stdout, err=sys.stderr,
                           absence=absences.get(mailbox.name))
    finally:
        if store is not None:
            store.close()


NOT_YET = "no decisions recorded yet"


def _open_store(config_path: Path, *, readonly: bool = False) -> Any:
    """The config and the store, or (config, None) when the state does not exist: admin
    commands never create it (a file made by root would lock the daemon's user out)."""
    from awayd.adapters.store_api import NoStateYet, open_store, state_exists  # noqa: PLC0415

    config = load_config(config_path)
    if not state_exists(config.state):
        return config, None
    try:
        return config, open_store(config.state, readonly=readonly)
    except NoStateYet:  # a PostgreSQL database without awayd's tables: read-only, as absent
        return config, None


def _where(config: Any) -> str:
    """Why there is no state: a file that does not exist, or a database without the tables."""
    from awayd.adapters.store_api import state_name  # noqa: PLC0415

    if config.state.url:
        return f"{state_name(config.state)} has no awayd tables yet"
    return f"{config.state.path} does not exist"


def _no_state(command: str, config: Any) -> StateError:
    return StateError(f"awayd {command}: {NOT_YET}: {config.state.path} does not exist; start "
                      "the daemon once (it creates the state as its own user), then run this again")


def cmd_run(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.obs.logs import configure_logging  # noqa: PLC0415
    from awayd.service import run_service  # noqa: PLC0415

    configure_logging()
    return run_service(config_path, once=args.once, init_state=args.init_state)


def cmd_report(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.cli.absence_view import describe_absence, read_absences  # noqa: PLC0415
    from awayd.cli.admin import parse_since, print_report  # noqa: PLC0415

    config, store = _open_store(config_path, readonly=True)
    since = parse_since(args.since, _now())
    if store is None:
        if args.json:
            print(json.dumps({"since": since.isoformat(), "mailboxes": [], "absences": {},
                              "note": NOT_YET}))
        else:
            print(f"{NOT_YET} ({_where(config)}: the daemon has not run)")
        return 0
    with store:
        report = store.report(since)
    absences, _problem = read_absences(config.state)
    described = {mb.name: describe_absence(absences[mb.name], mb, _now())
                 for mb in config.mailboxes if mb.name in absences}
    print_report(report, sys.stdout, as_json=args.json, absences=described)
    return 0


def cmd_forget(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.cli.admin import normalise_entry  # noqa: PLC0415

    config, store = _open_store(config_path)
    if config.mailbox(args.mailbox) is None:
        if store is not None:
            store.close()
        print(f"awayd forget: no mailbox named {args.mailbox!r}", file=sys.stderr)
        return 2
    address = normalise_entry(args.address, "forget")
    if store is None:
        print(f"{NOT_YET}: nothing to forget")
        return 0
    with store:
        count = store.forget(args.mailbox, address)
    print(f"forgot {count} reply record(s) of {address} in mailbox {args.mailbox}")
    return 0


def cmd_suppress(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.cli.admin import normalise_entry  # noqa: PLC0415

    config, store = _open_store(config_path, readonly=args.action == "list")
    scope = getattr(args, "mailbox", None) or "*"
    if scope != "*" and config.mailbox(scope) is None:
        if store is not None:
            store.close()
        print(f"awayd suppress {args.action}: no mailbox named {scope!r}", file=sys.stderr)
        return 2
    if store is None:
        if args.action == "list":
            print(f"{NOT_YET}: the opt-out list is empty")
            return 0
        normalise_entry(args.entry, f"suppress {args.action}")  # a bad entry is told first
        raise _no_state(f"suppress {args.action}", config)
    with store:
        if args.action == "list":
            for item in store.suppress_list():
                if scope != "*" and item.mailbox not in ("*", scope):
                    continue
                where = "all mailboxes" if item.mailbox == "*" else f"mailbox {item.mailbox}"
                print(f"{item.entry}\t{where}\tsince {item.added_at:%Y-%m-%d}")
            return 0
        entry = normalise_entry(args.entry, f"suppress {args.action}")
        if args.action == "add":
            store.suppress_add(entry, mailbox=scope, now=_now())
            print(f"suppressed {entry} ({'all mailboxes' if scope == '*' else scope})")
            return 0
        if not store.suppress_remove(entry, mailbox=scope):
            print(f"awayd suppress: {entry} was not on the list", file=sys.stderr)
            return 1
        print(f"removed {entry}")
        return 0


def cmd_demo(args: argparse.Namespace, config_path: Path) -> int:
    """Embedded IMAP and SMTP servers on 127.0.0.1, a sample config, the real daemon."""
    try:
        from awayd.demo.run import run_demo  # noqa: PLC0415 (pymap/aiosmtpd are demo-only)
    except ImportError as err:
        raise SourceError(f"awayd demo: needs the demo extras ({err.name or err} is missing): "
                          "pip install 'awayd[demo]'", transient=False) from err
    return run_demo(keep=args.keep)
