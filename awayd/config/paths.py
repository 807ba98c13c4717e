"""Every file named in the config resolves against the config file's directory, not the CWD."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from awayd.config.model import Config, ImapSettings, SecretSource, SmtpSettings, TlsSettings


def resolve_path(path: Path, base_dir: Path) -> Path:
    """`~` expands to the home directory; a relative path is taken from `base_dir`.

    Under systemd the working directory is `/`, so a path taken from the CWD would differ
    between `awayd check` in a shell and the service.
    """
    expanded = path.expanduser()
    return expanded if expanded.is_absolute() else base_dir / expanded


def resolve_command(argv: tuple[str, ...], base_dir: Path) -> tuple[str, ...]:
    """A program named by a path (`./token`, `~/bin/token`) resolves like a file; a bare name
    (`secret-tool`) is looked up on PATH when it runs."""
    if not argv or "/" not in argv[0]:
        return argv
    return (str(resolve_path(Path(argv[0]), base_dir)), *argv[1:])


def _secret(source: SecretSource | None, base_dir: Path) -> SecretSource | None:
    if source is None:
        return None
    if source.file is not None:
        return replace(source, file=resolve_path(source.file, base_dir))
    if source.command is not None:
        return replace(source, command=resolve_command(source.command, base_dir))
    return source


def _oauth(argv: tuple[str, ...] | None, base_dir: Path) -> tuple[str, ...] | None:
    return None if argv is None else resolve_command(argv, base_dir)


def _tls(tls: TlsSettings, base_dir: Path) -> TlsSettings:
    if tls.ca_file is None:
        return tls
    return replace(tls, ca_file=resolve_path(tls.ca_file, base_dir))


def _smtp(smtp: SmtpSettings, base_dir: Path) -> SmtpSettings:
    return replace(smtp, tls=_tls(smtp.tls, base_dir), password=_secret(smtp.password, base_dir),
                   oauth2_token_command=_oauth(smtp.oauth2_token_command, base_dir))


def _imap(imap: ImapSettings, base_dir: Path) -> ImapSettings:
    return replace(imap, tls=_tls(imap.tls, base_dir), password=_secret(imap.password, base_dir),
                   oauth2_token_command=_oauth(imap.oauth2_token_command, base_dir))


def resolve_paths(config: Config, base_dir: Path) -> Config:
    """Return `config` with password files, CA files and commands given by a path resolved
    against `base_dir`.

    A mailbox that uses the top-level `smtp` keeps sharing the same (resolved) object, so
    callers can still tell an inherited relay from a mailbox's own by identity.
    """
    top = _smtp(config.smtp, base_dir) if config.smtp is not None else None
    mailboxes = []
    for mb in config.mailboxes:
        if mb.smtp is None:
            smtp = None
        elif mb.smtp is config.smtp:
            smtp = top
        else:
            smtp = _smtp(mb.smtp, base_dir)
        imap = _imap(mb.imap, base_dir) if mb.imap is not None else None
        mailboxes.append(replace(mb, imap=imap, smtp=smtp))
    return replace(config, smtp=top, mailboxes=tuple(mailboxes))


SYSTEM_CONFIG = Path("/etc/awayd/config.yaml")


def user_config(environ: Mapping[str, str]) -> Path | None:
    """`$XDG_CONFIG_HOME/awayd/config.yaml`, else `~/.config/awayd/config.yaml` (None: no home)."""
    base = environ.get("XDG_CONFIG_HOME")
    if base and Path(base).is_absolute():
        return Path(base) / "awayd" / "config.yaml"
    home = environ.get("HOME")
    if not home:
        return None
    return Path(home) / ".config" / "awayd" / "config.yaml"


def default_config_path(environ: Mapping[str, str], euid: int) -> Path:
    """`$AWAYD_CONFIG`; else, for anyone but root, the user's config when it exists; else
    /etc/awayd/config.yaml. Root never picks up its own home's file, so `awayd` run by an
    administrator on a mail host always means the system config."""
    given = environ.get("AWAYD_CONFIG")
    if given:
        return Path(given)
    if euid != 0:
        mine = user_config(environ)
        if mine is not None and mine.is_file():
            return mine
    return SYSTEM_CONFIG
