"""One function per CLI subcommand: load what it needs, call the module that does the work."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from awayd.config import load_config
from awayd.configcheck import summary
from awayd.core.history import EmptyHistory, HistoryView
from awayd.errors import AwaydError


def _now() -> datetime:
    return datetime.now(UTC)


def cmd_check(args: argparse.Namespace, config_path: Path) -> int:
    config = load_config(config_path)
    print(summary(config, _now()))
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


def _not_yet(name: str) -> int:
    raise AwaydError(f"{name} is not available in this build")


def cmd_run(args: argparse.Namespace, config_path: Path) -> int:
    return _not_yet("run")


def cmd_report(args: argparse.Namespace, config_path: Path) -> int:
    return _not_yet("report")


def cmd_forget(args: argparse.Namespace, config_path: Path) -> int:
    return _not_yet("forget")


def cmd_suppress(args: argparse.Namespace, config_path: Path) -> int:
    return _not_yet("suppress")


def cmd_demo(args: argparse.Namespace, config_path: Path) -> int:
    return _not_yet("demo")
