"""The argparse tree of `awayd`; maps errors to exit codes and holds no logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from awayd import __version__
from awayd.errors import AwaydError, ConfigError, InputError, SourceError, StateError, UsageError

EX_OK = 0
EX_USAGE = 2
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_CONFIG = 78
EX_SOFTWARE = 70
#: Set to 1 to print the traceback of an internal error (a bug) after its one-line summary.
DEBUG_ENV = "AWAYD_DEBUG"
DEFAULT_CONFIG = "/etc/awayd/config.yaml"
EXIT_CODES = """exit codes:
  0   ok
  2   usage: a wrong option or argument (unknown mailbox, bad date)
  65  a message file given to explain cannot be read
  69  a server is unavailable at start (run --once); demo without its packages
  70  internal error: a bug (AWAYD_DEBUG=1 shows the traceback to report)
  75  temporary failure (state database locked, network); try again later
  78  configuration error (config file, templates, state file); systemd does not restart
  141 the reader of the output went away (awayd explain ... | head)"""


def default_config() -> str:
    from awayd.config.paths import default_config_path  # noqa: PLC0415

    return str(default_config_path(os.environ, os.geteuid()))


def _iso(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, found {value!r}") from err
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="awayd", description="An IMAP/SMTP auto-responder "
                                     "that answers people, never machines.", epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    run.add_argument("--init-state", action="store_true",
                     help="start afresh on an existing empty state file (refused otherwise: "
                     "every sender would be answered again)")
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
    fg.add_argument("--mailbox", required=True, metavar="NAME", help="the mailbox that answered")
    fg.add_argument("address", metavar="ADDRESS", help="the sender to answer again next time")
    sp = sub.add_parser("suppress", help="manage the opt-out list (addresses and @domains)")
    sps = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, what in (("add", "never answer this address or domain again"),
                         ("remove", "take an entry off the opt-out list")):
        a = with_config(sps.add_parser(action, help=what))
        a.add_argument("--mailbox", metavar="NAME", help="only for this mailbox (default: all)")
        a.add_argument("entry", metavar="ADDRESS|@DOMAIN", help="an address or @domain")
    sl = with_config(sps.add_parser("list", help="print the opt-out list"))
    sl.add_argument("--mailbox", metavar="NAME", help="only entries that apply to this mailbox "
                    "(its own and those for all mailboxes)")
    aw = with_config(sub.add_parser("away", help="set the owner's absence of a mailbox (stored "
                                    "in the state; a running daemon uses it at once)"))
    aw.add_argument("mailbox", metavar="MAILBOX", help="mailbox name from the config")
    aw.add_argument("--from", dest="start", metavar="DATE", help="first day (2026-12-20) or "
                    "time (2026-12-20T14:00, local to the mailbox); default: today")
    aw.add_argument("--until", required=True, metavar="DATE", help="last day, inclusive "
                    "(2027-01-04), or the time it ends")
    aw.add_argument("--text", metavar="FILE", help="reply text template (UTF-8); default: the "
                    "texts of the mailbox's first absence rule")
    aw.add_argument("--reply-to", metavar="ADDR", help="a human to write to instead, such as "
                    "'Bob Martin <bob@example.org>'")
    bk = with_config(sub.add_parser("back", help="end the owner's absence and forget who was "
                                    "answered by the mailbox"))
    bk.add_argument("mailbox", metavar="MAILBOX", help="mailbox name from the config")
    st = with_config(sub.add_parser("status", help="per mailbox: owner absence, rules active "
                                    "now, next change"))
    st.add_argument("--json", action="store_true", help="one JSON object per mailbox, per line")
    sta = sub.add_parser("state", help="manage the state store")
    stas = sta.add_subparsers(dest="action", required=True, metavar="ACTION")
    mig = with_config(stas.add_parser("migrate", help="copy the SQLite state into an empty "
                                      "PostgreSQL database (stop the daemon first)"))
    mig.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host/db")
    mig.add_argument("--force", action="store_true", help="replace whatever state the target "
                     "already holds (refused otherwise)")
    demo = sub.add_parser("demo", help="embedded IMAP and SMTP servers, a sample config, live "
                          "decisions")
    demo.add_argument("--keep", action="store_true", help="stay up after the samples so you can "
                      "send your own mail")
    _name_each_parser(parser)
    return parser


def _name_each_parser(parser: argparse.ArgumentParser) -> None:
    """Record in each subcommand's defaults its own parser, so that an unknown argument is
    reported as `awayd report: error: ...` rather than by the top-level parser."""
    parser.set_defaults(command_parser=parser)
    for action in parser._actions:  # argparse has no public view of its tree
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _name_each_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return dispatch(args)
    except UsageError as err:
        print(str(err), file=sys.stderr)
        return EX_USAGE
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    except InputError as err:
        _say(err)
        return EX_DATAERR
    except SourceError as err:
        _say(err)
        return EX_UNAVAILABLE
    except StateError as err:
        _say(err)
        return EX_TEMPFAIL if err.transient else EX_CONFIG
    except AwaydError as err:
        _say(err)
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader (`| head`) left: say nothing, and keep Python from failing to flush later
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # what a shell reports for SIGPIPE
    except Exception as err:  # deliberate: a bug must still reach a person as one line
        print(f"awayd {args.command}: internal error: {err!r} (this is a bug; run again with "
              f"{DEBUG_ENV}=1 for the details to report)", file=sys.stderr)
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        return EX_SOFTWARE


def _say(err: AwaydError) -> None:
    text = str(err)
    print(text if text.startswith("awayd") else f"awayd: {text}", file=sys.stderr)


def dispatch(args: argparse.Namespace) -> int:
    from awayd.cli import away as commands_away  # noqa: PLC0415 (keeps `awayd --help` fast)
    from awayd.cli import commands  # noqa: PLC0415
    from awayd.cli import state as commands_state  # noqa: PLC0415

    config_path = Path(getattr(args, "config", None) or default_config())
    handler = {
        "run": commands.cmd_run,
        "check": commands.cmd_check,
        "explain": commands.cmd_explain,
        "report": commands.cmd_report,
        "forget": commands.cmd_forget,
        "suppress": commands.cmd_suppress,
        "demo": commands.cmd_demo,
        "away": commands_away.cmd_away,
        "back": commands_away.cmd_back,
        "status": commands_away.cmd_status,
        "state": commands_state.cmd_state,
    }[args.command]
    return handler(args, config_path)


if __name__ == "__main__":
    raise SystemExit(main())
