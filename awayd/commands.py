"""One function per CLI subcommand: load what it needs, call the module that does the work."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from awayd.config import load_config
from awayd.configcheck import summary
from awayd.core.history import EmptyHistory, HistoryView


def _now() -> datetime:
    return datetime.now(UTC)


def cmd_check(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.checksecrets import verify_secrets  # noqa: PLC0415
    from awayd.configcheck import rule_warnings  # noqa: PLC0415
    from awayd.configmarks import located, read_text  # noqa: PLC0415

    config = load_config(config_path)
    verify_secrets(config, config_path)
    now = _now()
    for warning in located(config.source, read_text(config_path), rule_warnings(config, now)):
        print(f"warning: {warning}", file=sys.stderr)
    print(summary(config, now))
    if getattr(args, "connect", False):
        from awayd.checkconnect import connect_report  # noqa: PLC0415

        return connect_report(config, sys.stdout)
    return 0


def cmd_explain(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.explain import run_explain  # noqa: PLC0415

    config = load_config(config_path)
    mailbox = config.mailboxes[0] if not args.mailbox else config.mailbox(args.mailbox)
    if mailbox is None:
        names = ", ".join(m.name for m in config.mailboxes)
        print(f"awayd explain: no mailbox named {args.mailbox!r} (known: {names})", file=sys.stderr)
        return 2
    history: HistoryView = EmptyHistory()
    store = None
    if args.history:
        from awayd.adapters.store_sqlite import SqliteStore  # noqa: PLC0415

        store = SqliteStore.open(config.state.path, readonly=True)
        history = store
    try:
        return run_explain(args.files, mailbox, at=args.at or _now(), history=history,
                           as_json=args.json, out=sys.stdout, err=sys.stderr)
    finally:
        if store is not None:
            store.close()


def _open_store(config_path: Path, *, readonly: bool = False) -> Any:
    from awayd.adapters.store_sqlite import SqliteStore  # noqa: PLC0415

    config = load_config(config_path)
    return config, SqliteStore.open(config.state.path, readonly=readonly)


def cmd_run(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.obs.logs import configure_logging  # noqa: PLC0415
    from awayd.service import run_service  # noqa: PLC0415

    configure_logging()
    return run_service(config_path, once=args.once)


def cmd_report(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.admin import parse_since, print_report  # noqa: PLC0415

    _config, store = _open_store(config_path, readonly=True)
    with store:
        report = store.report(parse_since(args.since, _now()))
    print_report(report, sys.stdout, as_json=args.json)
    return 0


def cmd_forget(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.admin import normalise_entry  # noqa: PLC0415

    config, store = _open_store(config_path)
    if config.mailbox(args.mailbox) is None:
        store.close()
        print(f"awayd forget: no mailbox named {args.mailbox!r}", file=sys.stderr)
        return 2
    address = normalise_entry(args.address)
    with store:
        count = store.forget(args.mailbox, address)
    print(f"forgot {count} reply record(s) of {address} in mailbox {args.mailbox}")
    return 0


def cmd_suppress(args: argparse.Namespace, config_path: Path) -> int:
    from awayd.admin import normalise_entry  # noqa: PLC0415

    config, store = _open_store(config_path, readonly=args.action == "list")
    scope = getattr(args, "mailbox", None) or "*"
    if scope != "*" and config.mailbox(scope) is None:
        store.close()
        print(f"awayd suppress: no mailbox named {scope!r}", file=sys.stderr)
        return 2
    with store:
        if args.action == "list":
            for item in store.suppress_list():
                where = "all mailboxes" if item.mailbox == "*" else f"mailbox {item.mailbox}"
                print(f"{item.entry}\t{where}\tsince {item.added_at:%Y-%m-%d}")
            return 0
        entry = normalise_entry(args.entry)
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
    from awayd.demo.run import run_demo  # noqa: PLC0415 (pymap/aiosmtpd are demo-only)

    return run_demo(keep=args.keep)
