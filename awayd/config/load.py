"""YAML → frozen, typed Config; every problem reported at once with file, path and expectation."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from awayd.config import read as cr
from awayd.config.host import PUSH_KEYS, check_push, parse_push
from awayd.config.marks import yaml_marks
from awayd.config.model import (
    Backscatter,
    Config,
    Mailbox,
    MetricsSettings,
    RateLimit,
    SmtpSettings,
    StateSettings,
)
from awayd.config.paths import resolve_paths
from awayd.config.read import Node, Problems
from awayd.config.ruleparse import MATCH_KEYS, RULE_KEYS, TEMPLATE_KEYS, WEEKLY_KEYS, WHEN_KEYS, parse_rule
from awayd.config.rules import trial_render_at_keys
from awayd.config.servers import IMAP_KEYS, SMTP_KEYS, parse_imap, parse_secret, parse_smtp
from awayd.config.sources import MailboxNode, expand, located_files, rebase
from awayd.config.yamlsafe import LimitedSafeLoader
from awayd.errors import ConfigError

_VCARD_EMAIL = re.compile(r"^(?:item\d+\.)?EMAIL[^:]*:(.+)$", re.IGNORECASE)

TOP_KEYS = frozenset({"state", "smtp", "metrics", "mailboxes", "defaults", "include",
                      "mailbox_command", "push"})
STATE_KEYS = frozenset({"path", "url", "lease", "max_delay", "keep_decisions", "retry_base"})
METRICS_KEYS = frozenset({"listen"})

MAILBOX_KEYS = frozenset({"name", "address", "aliases", "display_name", "timezone", "language",
                          "internal_domains", "contacts", "max_age", "sender_fallback",
                          "backscatter", "suppression", "max_replies", "imap", "smtp",
                          "save_copy", "rules", "subaddress_separator"})
BACKSCATTER_KEYS = frozenset({"enabled", "authserv_ids"})
MAX_REPLIES_KEYS = frozenset({"per_hour", "per_day"})
#: Every section of the schema and its keys: the docs and the example are checked against it.
SCHEMA = {"top": TOP_KEYS, "state": STATE_KEYS, "metrics": METRICS_KEYS, "smtp": SMTP_KEYS,
          "imap": IMAP_KEYS, "mailbox": MAILBOX_KEYS, "rule": RULE_KEYS, "when": WHEN_KEYS,
          "weekly": WEEKLY_KEYS, "match": MATCH_KEYS, "template": TEMPLATE_KEYS,
          "backscatter": BACKSCATTER_KEYS, "max_replies": MAX_REPLIES_KEYS, "push": PUSH_KEYS}


def _contacts(node: Node, base_dir: Path) -> frozenset[str]:
    """Addresses from a text file (one a line) or a vCard file (EMAIL properties)."""
    value = node.get("contacts", cr.as_str, "a file path", "")
    if not value:
        return frozenset()
    given = Path(value).expanduser()
    path = given if given.is_absolute() else base_dir / given
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        node.problems.add(node.sub("contacts"), "a readable file", f"{path}: {err.strerror}")
        return frozenset()
    found: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        m = _VCARD_EMAIL.match(line)
        candidate = m.group(1).strip() if m else line
        if not candidate or candidate.startswith("#") or "@" not in candidate or ":" in candidate:
            continue
        found.add(candidate.lower())
    return frozenset(found)


def _mailbox(node: Node, default_smtp: SmtpSettings | None, base_dir: Path) -> Mailbox | None:
    node.reject_unknown(MAILBOX_KEYS)
    name = node.require("name", cr.as_str, "a mailbox name") or "?"
    address = node.require("address", cr.as_address, "an address such as alice@example.org")
    tz = node.get("timezone", cr.as_timezone, "an IANA time zone such as Europe/Paris",
                  ZoneInfo("UTC"))
    language = node.get("language", cr.as_language, "a language code such as en or fr", "en")
    fallback = node.get("sender_fallback", cr.as_str, "none | from", "none")
    if fallback not in ("none", "from"):
        node.problems.add(node.sub("sender_fallback"), "none | from", fallback)
    backscatter = Backscatter()
    bs = node.child("backscatter")
    if bs is not None:
        bs.reject_unknown(BACKSCATTER_KEYS)
        backscatter = Backscatter(
            enabled=bs.get("enabled", cr.as_bool, "true or false", True),
            authserv_ids=frozenset(s.lower() for s in bs.get(
                "authserv_ids", cr.as_str_list, "a list of authserv-ids", ())))
    suppression: set[str] = set()
    for i, entry in enumerate(node.get("suppression", cr.as_str_list, "a list of addresses "
                                       "and @domains", ())):
        entry = entry.strip().lower()
        if entry.startswith("@") and "." in entry:
            suppression.add(entry)
            continue
        try:
            suppression.add(cr.as_address(entry))
        except ValueError:
            node.problems.add(f"{node.sub('suppression')}[{i}]", "an address or @domain", entry)
    limits = RateLimit()
    mr = node.child("max_replies")
    if mr is not None:
        mr.reject_unknown(MAX_REPLIES_KEYS)
        limits = RateLimit(mr.get("per_hour", cr.as_positive_int, "a positive number", 60),
                           mr.get("per_day", cr.as_positive_int, "a positive number", 500))
    imap_node, smtp_node = node.child("imap"), node.child("smtp")
    rule_nodes = list(node.children("rules"))
    rules = [parse_rule(r, tz, language) for r in rule_nodes]
    names = [str(r.raw("name")) for r in rule_nodes if r.has("name")]  # failed rules count too
    for dup in sorted({n for n in names if names.count(n) > 1}):
        node.problems.add(node.sub("rules"), "unique rule names", f"{dup!r} twice")
    if address is None:
        return None
    return Mailbox(
        name=name,
        address=address,
        aliases=node.get("aliases", lambda v: tuple(cr.as_address(a) for a in cr.as_str_list(v)),
                         "a list of addresses", ()),
        display_name=node.get("display_name", cr.as_str, "a name", None),
        timezone=tz,
        language=language,
        internal_domains=frozenset(d.lower().lstrip("@") for d in node.get(
            "internal_domains", cr.as_str_list, "a list of domains", ())),
        contacts=_contacts(node, base_dir),
        max_age=node.get("max_age", cr.as_duration, "a duration such as 4d", cr.as_duration("4d")),
        sender_fallback="from" if fallback == "from" else "none",
        backscatter=backscatter,
        suppression=frozenset(suppression),
        max_replies=limits,
        imap=parse_imap(imap_node, address) if imap_node is not None else None,
        smtp=parse_smtp(smtp_node) if smtp_node is not None else default_smtp,
        save_copy=node.get("save_copy", cr.as_str, "a folder name", None),
        rules=tuple(r for r in rules if r is not None),
        subaddress_separator=None if "subaddress_separator" in node.data and node.raw(
            "subaddress_separator") is None else node.get(
            "subaddress_separator", _separator,
            'a short string without "@" or spaces, such as "+" (null or "" for none)', "+"),
    )


def _separator(value: object) -> str | None:
    """A sub-address separator: null or "" turn sub-addresses off."""
    if value is None or value == "":
        return None
    text = cr.as_str(value)
    if len(text) > 8 or "@" in text or any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError
    return text


class _Loader(LimitedSafeLoader):
    """Safe YAML where an impossible date (2026-02-30) stays a string, reported with its path."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None, *,
                 fallback_addresses: tuple[str, ...] | None = None) -> Config:
    """Build a Config from YAML `text`; raises one ConfigError listing every problem.

    `fallback_addresses`: what mailbox_command gave before, kept if the command fails now.
    """
    problems = Problems(source)
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(f"{source}: {where}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, found {type(data).__name__}")
    root = Node(data, "", problems)
    root.reject_unknown(TOP_KEYS)
    base = base_dir or Path(".")
    state_node = root.child("state")
    state = StateSettings()
    if state_node is not None:
        state_node.reject_unknown(STATE_KEYS)
        path = Path(state_node.get("path", cr.as_str, "a file path", str(state.path))).expanduser()
        state = StateSettings(
            path=path if path.is_absolute() else base / path,
            max_delay=state_node.get("max_delay", cr.as_duration, "a duration such as 24h",
                                     state.max_delay),
            keep_decisions=state_node.get("keep_decisions", cr.as_duration,
                                          "a duration such as 90d", state.keep_decisions),
            retry_base=state_node.get("retry_base", _positive_duration,
                                      "a duration above 0 such as 30s", state.retry_base),
            url=_state_url(state_node),
            lease=state_node.get("lease", _lease_duration, "a duration of at least 1s such as 30s",
                                 state.lease))
    smtp_node = root.child("smtp")
    smtp = parse_smtp(smtp_node) if smtp_node is not None else None
    metrics_node = root.child("metrics")
    metrics = MetricsSettings()
    if metrics_node is not None:
        metrics_node.reject_unknown(METRICS_KEYS)
        metrics = MetricsSettings(listen=metrics_node.get(
            "listen", _listen_address, "host:port such as 127.0.0.1:9387", None))
    push_node = root.child("push")
    push = parse_push(push_node, parse_secret) if push_node is not None else None
    expanded = expand(root, base, load=_load_yaml, fallback_addresses=fallback_addresses)
    if not expanded.mailboxes and not expanded.failed:
        problems.add("mailboxes", "a list with at least one mailbox", data.get("mailboxes", cr.MISSING))
    built: list[tuple[MailboxNode, Node, Mailbox | None, Problems]] = []
    for found in expanded.mailboxes:
        scratch = Problems(found.node.problems.source)
        node = Node(found.node.data, found.node.path, scratch)
        mb = _mailbox(node, smtp, base)
        if mb is not None and mb.imap is not None and mb.smtp is None:
            scratch.add(node.sub("smtp"), "an smtp section (here, in defaults or at the top "
                        "level) for a mailbox that is watched over imap")
        built.append((found, node, mb, scratch))
    mailboxes = [mb for _f, _n, mb, _s in built if mb is not None]
    counts = Counter(m.name for m in mailboxes)
    for dup in sorted(n for n, k in counts.items() if k > 1):
        problems.add("mailboxes", "unique mailbox names", f"{dup!r} twice")
    check_push(push, mailboxes, problems)
    if push is not None and state.url is not None:
        # several hosts split the mailboxes by lease; events reach one endpoint on one host
        problems.note("push", "push mode needs the state on SQLite (one host); with state.url "
                      "(several hosts on PostgreSQL) watch the mailboxes with IDLE or polling")
    config = resolve_paths(Config(source=source, state=state, smtp=smtp,
                                  mailboxes=tuple(mailboxes), metrics=metrics,
                                  push=push, sources=tuple(expanded.sources),
                                  command_addresses=expanded.command_addresses,
                                  notes=tuple(expanded.notes)), base)
    resolved = iter(config.mailboxes)
    seen: set[str] = set()
    rendered_command = False
    for found, node, mb, scratch in built:
        if mb is None:
            rebase(found, scratch, problems, seen)
            continue
        this = next(resolved)
        # The command's mailboxes differ only in name and address (plain strings): one trial
        # render answers for all of them (20,000 renders took 14 s).
        if found.origin != "command" or not rendered_command:
            trial_render_at_keys(replace(config, mailboxes=(this,)), [node], scratch)
            rendered_command = rendered_command or found.origin == "command"
        rebase(found, scratch, problems, seen)
    if problems.items or any(p.items for p, _t in expanded.files):
        raise ConfigError(problems.located(yaml_marks(text)) + located_files(expanded))
    return config


def _state_url(node: Node) -> str | None:
    """`state.url`: a PostgreSQL URL (the state on a server) instead of `path` (a SQLite file)."""
    url = node.get("url", cr.as_str, "a URL such as postgresql://awayd@db.example.org/awayd", None)
    if url is None:
        return None
    if not url.startswith(("postgresql://", "postgres://")):
        node.problems.add(node.sub("url"), "a URL such as postgresql://awayd@db.example.org/awayd",
                          url.split("://", 1)[0] + "://...")  # the rest may hold a password
        return None
    if node.has("path"):
        node.problems.note(node.sub("path"), "give either path (SQLite) or url (PostgreSQL), not both")
    return url


def _lease_duration(value: object) -> timedelta:
    duration = cr.as_duration(value)
    if duration < timedelta(seconds=1):
        raise ValueError("below 1s")
    return duration


def _load_yaml(text: str) -> object:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def _positive_duration(value: object) -> timedelta:
    duration = cr.as_duration(value)
    if duration <= timedelta(0):
        raise ValueError
    return duration


def _listen_address(value: object) -> str:
    text = cr.as_str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError
    return text


def load_config(path: Path, previous: Config | None = None) -> Config:
    """Read and parse the config file at `path`; a missing file is a ConfigError too.

    With `previous` (a reload), a failing mailbox_command keeps the addresses it gave then.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text: {err}") from err
    return parse_config(text, str(path), path.absolute().parent,
                        fallback_addresses=previous.command_addresses if previous else None)
