"""`awayd check` reads every secret and CA file the config names, as the daemon would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from awayd.config.marks import located, read_text
from awayd.config.model import Config, ImapSettings, SecretSource, SmtpSettings, TlsSettings
from awayd.errors import ConfigError

_KEYS = {"file": "password_file", "env": "password_env", "command": "password_command",
         "credential": "password_credential"}


@dataclass(frozen=True)
class SecretUse:
    """One secret the daemon will need: where the config names it and for which mailbox."""

    path: str  # YAML path of the key, e.g. mailboxes[0].imap.password_credential
    mailbox: str | None  # None: the top-level smtp, shared by mailboxes without their own
    source: SecretSource


def _key(source: SecretSource) -> str:
    for field, key in _KEYS.items():
        if getattr(source, field) is not None:
            return key
    return "password"


def _server(prefix: str, mailbox: str | None, settings: ImapSettings | SmtpSettings) -> Iterator[SecretUse]:
    if settings.oauth2_token_command is not None:
        yield SecretUse(f"{prefix}.oauth2_token_command", mailbox,
                        SecretSource(command=settings.oauth2_token_command))
    if settings.password is not None and (isinstance(settings, ImapSettings)
                                          or settings.username is not None):
        yield SecretUse(f"{prefix}.{_key(settings.password)}", mailbox, settings.password)
    if isinstance(settings, ImapSettings) and settings.master_password is not None:
        yield SecretUse(f"{prefix}.master_{_key(settings.master_password)}", mailbox,
                        settings.master_password)


def secret_uses(config: Config) -> list[SecretUse]:
    """Every secret of every server, the top-level smtp once."""
    uses = list(_server("smtp", None, config.smtp)) if config.smtp is not None else []
    if config.push is not None:
        key = _key(config.push.token).replace("password", "token")
        uses.append(SecretUse(f"push.{key}", None, config.push.token))
    for i, mb in enumerate(config.mailboxes):
        if mb.imap is not None:
            uses += _server(f"mailboxes[{i}].imap", mb.name, mb.imap)
        if mb.smtp is not None and mb.smtp is not config.smtp:
            uses += _server(f"mailboxes[{i}].smtp", mb.name, mb.smtp)
    return uses


def _tls_uses(config: Config) -> Iterator[tuple[str, TlsSettings]]:
    if config.smtp is not None:
        yield "smtp", config.smtp.tls
    for i, mb in enumerate(config.mailboxes):
        if mb.imap is not None:
            yield f"mailboxes[{i}].imap", mb.imap.tls
        if mb.smtp is not None and mb.smtp is not config.smtp:
            yield f"mailboxes[{i}].smtp", mb.smtp.tls


def secret_problems(config: Config, resolve: Callable[[SecretSource], str]) -> list[tuple[str, str]]:
    """(path, message) for each secret that cannot be read and each CA file that cannot be
    loaded. Messages name the mailbox and the source, never the secret."""
    from awayd.adapters.smtp import make_tls_context  # noqa: PLC0415 (smtplib only here)

    problems: list[tuple[str, str]] = []
    tried: set[SecretSource] = set()
    for use in secret_uses(config):
        if use.source in tried:
            continue  # one master password or relay secret shared by many mailboxes: once
        tried.add(use.source)
        who = f"mailbox {use.mailbox}" if use.mailbox else (
            "the push endpoint" if use.path.startswith("push.") else
            "every mailbox without its own smtp")
        try:
            secret = resolve(use.source)
        except ConfigError as err:
            problems.append((use.path, f"{who}: {err}"))
            continue
        if not secret:
            problems.append((use.path, f"{who}: {use.source.describe()} gives an empty secret"))
    for path, tls in _tls_uses(config):
        if tls.ca_file is not None and tls.security != "none":
            try:
                make_tls_context(tls)
            except ConfigError as err:
                problems.append((f"{path}.ca_file", str(err)))
    return problems


def verify_secrets(config: Config, config_path: Path,
                   resolve: Callable[[SecretSource], str] | None = None) -> None:
    """Raise one ConfigError listing every unreadable secret, with its line in the config."""
    if resolve is None:
        from awayd.adapters.secrets import resolve_secret  # noqa: PLC0415

        resolve = resolve_secret
    problems = secret_problems(config, resolve)
    if problems:
        raise ConfigError(located(config.source, read_text(config_path), problems))
