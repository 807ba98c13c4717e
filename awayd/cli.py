"""The argparse tree of `awayd`; maps errors to exit codes and holds no logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from awayd import __version__
from awayd.errors import AwaydError, ConfigError, InputError, SourceError, StateError

EX_OK = 0
EX_USAGE = 2
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_CONFIG = 78
DEFAULT_CONFIG = "/etc/awayd/config.yaml"


def default_config() -> str:
    from awayd.configpaths import default_config_path  # noqa: PLC0415

    return str(default_config_path(os.environ, os.geteuid()))


def _iso(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, found {value!r}") from err
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="awayd", description="An IMAP/SMTP auto-responder "
                                     "that answers people, never machines.")
    parser.add_argument("--version", action="version", version=f"awayd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default=None, metavar="PATH",
                       help="config file (default: $AWAYD_CONFIG, else ~/.config/awayd/config.yaml "
                       f"if it exists and you are not root, else {DEFAULT_CONFIG})")
        return p

    run = with_config(sub.add_parser("run", help="run the daemon in the foreground"))
    run.add_argument("--once", action="store_true",
                     help="process what is new, send, and exit (for cron and tests)")
    chk = with_config(sub.add_parser("check", help="validate the config and templates, read "
                                     "every secret, print a summary"))
    chk.add_argument("--connect", action="store_true",
                     help="also log in to every IMAP and SMTP server and print one line each "
                     "(exit 69 if a server cannot be reached, 78 if it refuses the login)")
    ex = with_config(sub.add_parser("explain", help="say why messages would or would not be "
                                    "answered"))
    ex.add_argument("--mailbox", metavar="NAME", help="mailbox to judge for (default: the first)")
    ex.add_argument("--at", type=_iso, metavar="ISO8601", help="evaluation time (default: now); "
                    "also the arrival time of files without a Received: line")
    ex.add_argument("--history", action="store_true",
                    help="consult the state store (read-only) for past replies and opt-outs")
    ex.add_argument("--json", action="store_true", help="one JSON object per input, per line")
    ex.add_argument("files", nargs="*", metavar="FILE", help="message files, directories of "
                    ".eml files, or - for stdin (default)")
    rep = with_config(sub.add_parser("report", help="counts per reason and rule, replies sent "
                                     "and failed"))
    rep.add_argument("--since", default="7d", metavar="DURATION", help="window (default 7d)")
    rep.add_argument("--json", action="store_true", help="print JSON")
    fg = with_config(sub.add_parser("forget", help="forget that a sender was answered"))
    fg.add_argument("--mailbox", required=True, metavar="NAME")
    fg.add_argument("address", metavar="ADDRESS")
    sp = sub.add_parser("suppress", help="manage the opt-out list (addresses and @domains)")
    sps = sp.add_subparsers(dest="action", required=True)
    for action in ("add", "remove"):
        a = with_config(sps.add_parser(action))
        a.add_argument("--mailbox", metavar="NAME", help="only for this mailbox (default: all)")
        a.add_argument("entry", metavar="ADDRESS|@DOMAIN")
    with_config(sps.add_parser("list"))
    demo = sub.add_parser("demo", help="embedded IMAP and SMTP servers, a sample config, live "
                          "decisions")
    demo.add_argument("--keep", action="store_true", help="stay up after the samples so you can "
                      "send your own mail")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return dispatch(args)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    except InputError as err:
        print(f"awayd: {err}", file=sys.stderr)
        return EX_DATAERR
    except SourceError as err:
        print(f"awayd: {err}", file=sys.stderr)
        return EX_UNAVAILABLE
    except StateError as err:
        print(f"awayd: {err}", file=sys.stderr)
        return EX_TEMPFAIL if err.transient else EX_CONFIG
    except AwaydError as err:
        print(f"awayd: {err}", file=sys.stderr)
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        return 130


def dispatch(args: argparse.Namespace) -> int:
    from awayd import commands  # noqa: PLC0415 (keeps `awayd --help` fast)

    config_path = Path(getattr(args, "config", None) or default_config())
    handler = {
        "run": commands.cmd_run,
        "check": commands.cmd_check,
        "explain": commands.cmd_explain,
        "report": commands.cmd_report,
        "forget": commands.cmd_forget,
        "suppress": commands.cmd_suppress,
        "demo": commands.cmd_demo,
    }[args.command]
    return handler(args, config_path)


if __name__ == "__main__":
    raise SystemExit(main())
