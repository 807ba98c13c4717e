"""Mailboxes from the config, from included files and from a command, each with the defaults."""

from __future__ import annotations

import glob
import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from awayd.config import read as cr
from awayd.config.marks import yaml_marks
from awayd.config.model import MailboxSource
from awayd.config.paths import resolve_command, resolve_path
from awayd.config.read import Node, Problems
from awayd.errors import ConfigError

#: Mapping-valued mailbox keys whose defaults merge key by key; every other key is replaced.
MERGED_KEYS = frozenset({"imap", "smtp", "backscatter", "max_replies"})
#: How a server logs in: a mailbox that names any of these inherits none of the defaults' ones.
CREDENTIAL_KEYS = frozenset({
    "password_file", "password_env", "password_command", "password_credential",
    "oauth2_token_command", "master_user", "master_password_file", "master_password_env",
    "master_password_command", "master_password_credential"})
COMMAND_TIMEOUT = 120.0
_GLOB_CHARS = frozenset("*?[")


@dataclass
class MailboxNode:
    """One mailbox's YAML (with the defaults merged in), where it came from, what it inherited."""

    node: Node
    inherited: frozenset[str]  # paths below the mailbox that came from `defaults`
    origin: str  # "config", "include", "command"


@dataclass
class Expanded:
    mailboxes: list[MailboxNode] = field(default_factory=list)
    #: Problems of each included file, with its text for line numbers.
    files: list[tuple[Problems, str]] = field(default_factory=list)
    sources: list[MailboxSource] = field(default_factory=list)
    command_addresses: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)
    #: An include or the command failed (its problem is reported; "no mailboxes" would be noise).
    failed: bool = False


def merge_defaults(defaults: Mapping[str, object], own: Mapping[str, object]
                   ) -> tuple[dict[str, object], frozenset[str]]:
    """The mailbox `own` with every key of `defaults` it does not give itself.

    Keys the mailbox gives win, even as null. imap, smtp, backscatter and max_replies merge key
    by key, except that a mailbox naming any credential key (password_*, oauth2_token_command,
    master_*) inherits none of them. Lists (rules, aliases, folders) are replaced whole.
    Returns the merged mapping and the inherited paths (`rules`, `imap.host`).
    """
    merged = dict(own)
    inherited: set[str] = set()
    for key, value in defaults.items():
        if key not in own:
            merged[key] = value
            inherited.add(key)
            continue
        mine = own[key]
        if key in MERGED_KEYS and isinstance(value, Mapping) and isinstance(mine, Mapping):
            sub = dict(mine)
            own_credentials = any(k in CREDENTIAL_KEYS for k in mine)
            for k, v in value.items():
                if k in mine or (own_credentials and k in CREDENTIAL_KEYS):
                    continue
                sub[k] = v
                inherited.add(f"{key}.{k}")
            merged[key] = sub
    return merged, frozenset(inherited)


def is_inherited(relative: str, inherited: frozenset[str]) -> bool:
    """True when the path below a mailbox (`imap.port`, `rules[0].text`) came from defaults."""
    head = relative.split("[", 1)[0]
    parts = head.split(".")
    return parts[0] in inherited or ".".join(parts[:2]) in inherited


def expand(root: Node, base_dir: Path, *, load: Callable[[str], object],
           fallback_addresses: tuple[str, ...] | None = None) -> Expanded:
    """Every mailbox of the config, the included files and the command, defaults merged in.

    `load` parses YAML text the way the main file is parsed. `fallback_addresses` is the list
    a previous run got from the command: kept, with a note, when the command fails now.
    """
    problems = root.problems
    out = Expanded()
    defaults_node = root.child("defaults")
    defaults: Mapping[str, object] = defaults_node.data if defaults_node is not None else {}
    for key in ("name", "address"):
        if key in defaults:
            problems.add(f"defaults.{key}", "no per-mailbox key here (each mailbox has its own)",
                         defaults[key])
    defaults = {k: v for k, v in defaults.items() if k not in ("name", "address")}

    def add(data: Mapping[str, object], path: str, where: Problems, origin: str) -> None:
        merged, inherited = merge_defaults(defaults, data)
        out.mailboxes.append(MailboxNode(Node(merged, path, where), inherited, origin))

    inline = root.data.get("mailboxes")
    if isinstance(inline, list):
        for i, item in enumerate(inline):
            if isinstance(item, Mapping):
                add(item, f"mailboxes[{i}]", problems, "config")
            else:
                problems.add(f"mailboxes[{i}]", "a mapping", item)
    elif inline is not None:
        problems.add("mailboxes", "a list of mailboxes", inline)
    out.sources.append(MailboxSource("config", "in the config file",
                                     len(out.mailboxes)))
    if root.has("include"):
        patterns = root.get("include", cr.as_str_list, "a file pattern or a list of them", ())
        for pattern in patterns:
            _include(pattern, base_dir, load=load, problems=problems, out=out, add=add)
    if root.has("mailbox_command"):
        argv = root.get("mailbox_command", _argv, "a command (list or string)", None)
        if argv is not None:
            _from_command(resolve_command(argv, base_dir), problems, out, add, fallback_addresses)
    return out


def _argv(value: object) -> tuple[str, ...]:
    argv = tuple(shlex.split(value)) if isinstance(value, str) else cr.as_str_list(value)
    if not argv:
        raise ValueError
    return argv


def _include(pattern: str, base_dir: Path, *, load: Callable[[str], object], problems: Problems,
             out: Expanded, add: Callable[[Mapping[str, object], str, Problems, str], None]) -> None:
    full = resolve_path(Path(pattern), base_dir)
    globbed = bool(_GLOB_CHARS & set(str(full)))
    paths = sorted(Path(p) for p in glob.glob(str(full))) if globbed else [full]
    before = len(out.mailboxes)
    for path in paths:
        if path.is_dir():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            out.failed = True
            problems.add("include", f"a readable UTF-8 file for {pattern!r}",
                         f"{path}: {getattr(err, 'strerror', None) or err}")
            continue
        where = Problems(str(path))
        out.files.append((where, text))
        try:
            data = load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            where.items.append(f"{path}: {at}not valid YAML: {err}")
            where.paths.append("")
            continue
        if isinstance(data, Mapping) and set(data) <= {"mailboxes"}:
            items, prefix = data.get("mailboxes"), "mailboxes"
        else:
            items, prefix = data, ""
        if items is None:
            continue  # an empty file: nothing to add
        if not isinstance(items, list):
            where.add(prefix or "(top level)", "a list of mailboxes, or a mapping with only "
                      "`mailboxes:`", type(items).__name__)
            continue
        for i, item in enumerate(items):
            if isinstance(item, Mapping):
                add(item, f"{prefix}[{i}]", where, "include")
            else:
                where.add(f"{prefix}[{i}]", "a mapping (one mailbox)", item)
    count = len(out.mailboxes) - before
    files = sum(1 for p in paths if not p.is_dir())
    out.sources.append(MailboxSource("include", f"from {pattern} ({files} file(s))", count))


def _from_command(argv: tuple[str, ...], problems: Problems, out: Expanded,
                  add: Callable[[Mapping[str, object], str, Problems, str], None],
                  fallback: tuple[str, ...] | None) -> None:
    shown = " ".join(argv)
    addresses: list[str] | tuple[str, ...]
    try:
        addresses = run_mailbox_command(argv)
    except MailboxCommandError as err:
        if fallback is None:
            out.failed = True
            problems.note("mailbox_command", f"{shown}: {err} (expected a command that lists "
                          "one address per line)")
            return
        addresses = fallback
        out.notes.append(f"mailbox_command {shown}: {err}; kept the {len(fallback)} "
                         "mailbox(es) it gave before")
    taken = {str(m.node.data.get("address", "")).lower() for m in out.mailboxes} | {
        str(m.node.data.get("name", "")) for m in out.mailboxes}
    good: list[str] = []
    lines: list[str] | tuple[str, ...] = addresses
    for lineno, line in enumerate(lines, start=1):
        try:
            address = cr.as_address(line)
        except (TypeError, ValueError):
            problems.note("mailbox_command", f"line {lineno} of the output of {argv[0]}: "
                          f"expected an address, found {line[:200]!r}")
            continue
        good.append(address)
        if address in taken:
            continue  # a mailbox written out in the config or an include wins
        taken.add(address)
        add({"name": address, "address": address}, f"mailbox_command[{lineno - 1}]", problems,
            "command")
    out.command_addresses = tuple(good)
    out.sources.append(MailboxSource("command", f"from {shown}",
                                     sum(1 for m in out.mailboxes if m.origin == "command")))


class MailboxCommandError(ConfigError):
    """The mailbox command could not run, failed, or printed something that is not text."""


def run_mailbox_command(argv: tuple[str, ...]) -> list[str]:
    """Run `argv` and return its non-empty output lines (`#` starts a comment line)."""
    try:
        done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=COMMAND_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise MailboxCommandError(f"no answer within {COMMAND_TIMEOUT:g} s") from None
    except OSError as err:
        raise MailboxCommandError(f"cannot run {argv[0]}: {err.strerror or err}") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise MailboxCommandError(f"{argv[0]} exited with status {done.returncode}"
                            + (f": {tail[0][:200]}" if tail else ""))
    try:
        text = done.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise MailboxCommandError(f"{argv[0]}: output is not UTF-8") from None
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]


def rebase(mailbox: MailboxNode, scratch: Problems, main: Problems, seen: set[str]) -> None:
    """Move a mailbox's problems to where they were written: a key inherited from `defaults`
    is reported once, at `defaults.KEY` of the main file; the rest at the mailbox itself."""
    target = mailbox.node.problems
    prefix = mailbox.node.path + "."
    for item, path in zip(scratch.items, scratch.paths, strict=True):
        relative = path[len(prefix):] if path.startswith(prefix) else ""
        if relative and (mailbox.origin == "command" or is_inherited(relative, mailbox.inherited)):
            moved = f"defaults.{relative}"
            text = item.replace(f"{scratch.source}: {path}:", f"{main.source}: {moved}:", 1)
            if text in seen:
                continue
            seen.add(text)
            main.items.append(text)
            main.paths.append(moved)
        else:
            target.items.append(item.replace(f"{scratch.source}: ", f"{target.source}: ", 1))
            target.paths.append(path)


def located_files(expanded: Expanded) -> list[str]:
    """The included files' problems with their line and column."""
    found: list[str] = []
    for problems, text in expanded.files:
        found += problems.located(yaml_marks(text))
    return found
