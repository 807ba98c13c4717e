"""`awayd state migrate`: move the state from its SQLite file to PostgreSQL."""

from __future__ import annotations

import argparse
from pathlib import Path

from awayd.adapters.store_api import redact
from awayd.config.load import load_config
from awayd.errors import UsageError


def cmd_state(args: argparse.Namespace, config_path: Path) -> int:
    config = load_config(config_path)
    if config.state.url:
        raise UsageError(f"awayd state migrate: {config_path}: the state is already on "
                         f"PostgreSQL ({redact(config.state.url)}); migrate copies a SQLite state")
    if not args.to.startswith(("postgresql://", "postgres://")):
        raise UsageError(f"awayd state migrate: --to: expected a URL such as "
                         f"postgresql://awayd@db.example.org/awayd, found {redact(args.to)!r}")
    try:
        from awayd.adapters.store_copy import copy_state  # noqa: PLC0415 (psycopg is optional)
    except ImportError as err:
        raise UsageError("awayd state migrate: needs psycopg: pip install 'awayd[postgres]'") from err
    copied = copy_state(config.state.path, args.to, force=args.force)
    print(f"copied {copied.total()} row(s) from {config.state.path} to {redact(args.to)}: "
          + ", ".join(f"{table} {count}" for table, count in copied.counts))
    print(f"now set `state: {{url: {redact(args.to)}}}` in {config_path} and start the daemon")
    return 0
