"""Frozen, typed configuration values produced by awayd.config.load and read everywhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from jinja2 import Template

Security = Literal["none", "starttls", "tls"]
Audience = Literal["everyone", "external", "internal", "contacts"]
RuleKind = Literal["absence", "acknowledgement"]


@dataclass(frozen=True)
class SecretSource:
    """Where a password or token comes from; exactly one field is set (resolved by adapters)."""

    file: Path | None = None
    env: str | None = None
    command: tuple[str, ...] | None = None
    credential: str | None = None  # name under $CREDENTIALS_DIRECTORY (systemd LoadCredential)

    def describe(self) -> str:
        """A log-safe description of the source, never the secret itself."""
        if self.file is not None:
            return f"file {self.file}"
        if self.env is not None:
            return f"env ${self.env}"
        if self.command is not None:
            return f"command {self.command[0]}"
        if self.credential is not None:
            return f"credential {self.credential}"
        return "none"


@dataclass(frozen=True)
class TlsSettings:
    security: Security
    verify: bool = True
    ca_file: Path | None = None


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    tls: TlsSettings
    username: str
    password: SecretSource | None
    oauth2_token_command: tuple[str, ...] | None = None
    folders: tuple[str, ...] = ("INBOX",)
    poll_interval: timedelta = timedelta(seconds=60)
    idle: bool = True
    timeout: float = 30.0
    #: Dovecot master user: log in as `username` with the master's secret (one secret for a host)
    master_user: str | None = None
    master_password: SecretSource | None = None
    #: None: AUTHENTICATE PLAIN with the user as authorization identity when offered, else
    #: LOGIN user*master; set: always LOGIN user<separator>master
    master_separator: str | None = None
    push: bool = False  # woken by push events and the sweep; no standing IDLE connection


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: TlsSettings
    username: str | None = None
    password: SecretSource | None = None
    envelope_from: str = ""  # "" is the null sender MAIL FROM:<>
    timeout: float = 30.0
    helo: str | None = None
    oauth2_token_command: tuple[str, ...] | None = None  # AUTH XOAUTH2 instead of a password
    auth_retry: float = 900.0  # seconds before the first retry after a refused login; doubles to 16x


@dataclass(frozen=True)
class WeeklyWindow:
    """Days (0 = Monday) and local time ranges; `outside` inverts the ranges on those days."""

    days: frozenset[int]
    ranges: tuple[tuple[time, time], ...] = ()  # empty = the whole day
    outside: bool = False


@dataclass(frozen=True)
class When:
    """A rule's schedule. Dates are whole local days (until inclusive); datetimes carry a zone."""

    start: date | datetime | None = None
    until: date | datetime | None = None
    weekly: tuple[WeeklyWindow, ...] = ()


@dataclass(frozen=True)
class Match:
    """Conditions of a conditional rule; every given condition must hold."""

    to: frozenset[str] = frozenset()
    subject: re.Pattern[str] | None = None
    from_domain: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Templates:
    subject: Template
    text: Template
    html: Template | None
    source: str  # concatenated template sources, hashed into the rule handle


@dataclass(frozen=True)
class Rule:
    name: str
    kind: RuleKind
    when: When | None
    match: Match | None
    audience: Audience
    interval: timedelta
    reply_to: str | None
    templates: Templates
    translations: tuple[tuple[str, Templates], ...] = ()
    handle: str = ""  # name + hash of its texts: editing a text starts a new period

    def templates_for(self, language: str) -> Templates | None:
        for lang, tpl in self.translations:
            if lang == language:
                return tpl
        return None


@dataclass(frozen=True)
class Backscatter:
    """Skip mail that our own trusted MX marked dmarc=fail (its Authentication-Results)."""

    enabled: bool = True
    authserv_ids: frozenset[str] = frozenset()  # empty: trust only the topmost header


@dataclass(frozen=True)
class RateLimit:
    per_hour: int = 60
    per_day: int = 500


@dataclass(frozen=True)
class Mailbox:
    name: str
    address: str
    aliases: tuple[str, ...] = ()
    display_name: str | None = None
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    language: str = "en"
    internal_domains: frozenset[str] = frozenset()
    contacts: frozenset[str] = frozenset()
    max_age: timedelta = timedelta(days=4)
    sender_fallback: Literal["none", "from"] = "none"
    backscatter: Backscatter = field(default_factory=Backscatter)
    suppression: frozenset[str] = frozenset()  # addresses and @domains, lowercased
    max_replies: RateLimit = field(default_factory=RateLimit)
    imap: ImapSettings | None = None
    smtp: SmtpSettings | None = None
    save_copy: str | None = None
    rules: tuple[Rule, ...] = ()
    subaddress_separator: str | None = "+"  # alice+conference@ is alice@; None: no sub-addresses

    @cached_property
    def addresses(self) -> frozenset[str]:
        """The address and every alias, lowercased."""
        return frozenset(a.lower() for a in (self.address, *self.aliases))

    @cached_property
    def spellings(self) -> dict[str, str]:
        """Each address and alias, lowercased, to its spelling in the config."""
        return {a.lower(): a for a in (*reversed(self.aliases), self.address)}


@dataclass(frozen=True)
class StateSettings:
    path: Path = Path("/var/lib/awayd/state.db")
    max_delay: timedelta = timedelta(hours=24)  # an unsent reply older than this is dropped
    keep_decisions: timedelta = timedelta(days=90)
    retry_base: timedelta = timedelta(seconds=30)  # first SMTP retry within this; doubles to 1 h
    url: str | None = None  # postgresql://...: the state on PostgreSQL instead of `path`
    lease: timedelta = timedelta(seconds=30)  # PostgreSQL: a dead host's mailboxes move after this


@dataclass(frozen=True)
class MetricsSettings:
    listen: str | None = None  # "127.0.0.1:9387"; None = no endpoint


@dataclass(frozen=True)
class PushSettings:
    """The endpoint that receives Dovecot push_notification events, and the catch-up sweep."""

    listen: str  # "127.0.0.1:8787" or "unix:/run/awayd/push.sock"
    token: SecretSource
    sweep_interval: timedelta = timedelta(minutes=5)
    workers: int = 8  # folders fetched at once (events and the sweep)
    pool: int = 64  # idle IMAP connections kept for the next event of the same user


@dataclass(frozen=True)
class MailboxSource:
    """Where mailboxes came from, for `awayd check`: the config itself, an include, a command."""

    kind: str  # "config" | "include" | "command"
    label: str
    count: int


@dataclass(frozen=True)
class Config:
    source: str
    state: StateSettings
    smtp: SmtpSettings | None
    mailboxes: tuple[Mailbox, ...]
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    push: PushSettings | None = None
    sources: tuple[MailboxSource, ...] = ()
    #: The addresses mailbox_command gave (None: no command); a failing command at reload
    #: keeps these.
    command_addresses: tuple[str, ...] | None = None
    #: Things worth a warning that are not errors (a failed command whose old list was kept).
    notes: tuple[str, ...] = ()

    def mailbox(self, name: str) -> Mailbox | None:
        for mb in self.mailboxes:
            if mb.name == name:
                return mb
        return None
