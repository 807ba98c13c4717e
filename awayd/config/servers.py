"""The imap and smtp sections: servers, TLS and the one secret source of each login."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import cast

from awayd.config import read as cr
from awayd.config.host import master_login
from awayd.config.model import ImapSettings, SecretSource, Security, SmtpSettings, TlsSettings
from awayd.config.read import Node

SECURITY = ("none", "starttls", "tls")
SECRET_KEYS = ("password_file", "password_env", "password_command", "password_credential")
_TLS_KEYS = {"security", "tls_verify", "ca_file"}
SMTP_KEYS = frozenset({"host", "port", "username", "envelope_from", "timeout", "helo",
                       "oauth2_token_command", "auth_retry", *SECRET_KEYS, *_TLS_KEYS})
_MASTER_SECRET_KEYS = tuple(f"master_{k}" for k in SECRET_KEYS)
IMAP_KEYS = frozenset({"host", "port", "username", "oauth2_token_command", "folders",
                       "poll_interval", "idle", "timeout", *SECRET_KEYS, *_TLS_KEYS,
                       "master_user", "master_separator", "push", *_MASTER_SECRET_KEYS})


def parse_secret(node: Node, keys: tuple[str, ...] = SECRET_KEYS) -> SecretSource | None:
    """The one secret source among `keys` (ordered file, env, command, credential)."""
    given = [k for k in keys if node.has(k)]
    if len(given) > 1:
        node.problems.add(node.sub(given[1]), "only one of " + ", ".join(keys),
                          f"both {given[0]} and {given[1]}")
    if not given:
        return None
    key = given[0]
    if key == keys[0]:
        return SecretSource(file=Path(node.get(key, cr.as_str, "a file path", "")).expanduser())
    if key == keys[1]:
        return SecretSource(env=node.get(key, cr.as_str, "an environment variable name", ""))
    if key == keys[2]:
        return SecretSource(command=node.get(key, as_argv, "a command (list or string)", ("false",)))
    return SecretSource(credential=node.get(key, cr.as_str, "a credential name", ""))


def as_argv(value: object) -> tuple[str, ...]:
    argv = tuple(shlex.split(value)) if isinstance(value, str) else cr.as_str_list(value)
    if not argv:
        raise ValueError
    return argv


def _tls(node: Node, default: str) -> TlsSettings:
    security = node.get("security", cr.as_str, " | ".join(SECURITY), default)
    if security not in SECURITY:
        node.problems.add(node.sub("security"), " | ".join(SECURITY), security)
        security = default
    ca = node.get("ca_file", cr.as_str, "a file path", "")
    return TlsSettings(security=cast(Security, security),
                       verify=node.get("tls_verify", cr.as_bool, "true or false", True),
                       ca_file=Path(ca).expanduser() if ca else None)


def parse_smtp(node: Node) -> SmtpSettings:
    node.reject_unknown(SMTP_KEYS)
    tls = _tls(node, "starttls")
    default_port = {"tls": 465, "starttls": 587, "none": 25}[tls.security]
    envelope_from = node.get("envelope_from", str, "an address or \"\"", "")
    if envelope_from:
        envelope_from = node.get("envelope_from", cr.as_address, "an address or \"\"", "")
    password = parse_secret(node)
    oauth = node.get("oauth2_token_command", as_argv, "a command (list or string)", None)
    username = node.get("username", cr.as_str, "a user name", None)
    if oauth is not None and password is not None:
        node.problems.add(node.sub("oauth2_token_command"), "either a password key or "
                          "oauth2_token_command", "both")
    if (oauth is not None or password is not None) and username is None:
        node.problems.add(node.sub("username"), "a user name to log in with")
    return SmtpSettings(
        host=node.require("host", cr.as_str, "a host name") or "localhost",
        port=node.get("port", cr.as_port, "a port number", default_port),
        tls=tls,
        username=username,
        password=password,
        oauth2_token_command=oauth,
        envelope_from=envelope_from,
        timeout=node.get("timeout", cr.as_duration, "a duration such as 30s",
                         cr.as_duration(30)).total_seconds(),
        helo=node.get("helo", cr.as_str, "a host name", None),
        auth_retry=node.get("auth_retry", cr.as_duration, "a duration such as 15m",
                            cr.as_duration(900)).total_seconds(),
    )


def parse_imap(node: Node, address: str | None = None) -> ImapSettings:
    node.reject_unknown(IMAP_KEYS)
    tls = _tls(node, "tls")
    default_port = 993 if tls.security == "tls" else 143
    password = parse_secret(node)
    oauth = node.get("oauth2_token_command", as_argv, "a command (list or string)", None)
    master = master_login(node, parse_secret, _MASTER_SECRET_KEYS)
    if password is None and oauth is None and master is None:
        node.problems.add(node.path, "one of " + ", ".join(SECRET_KEYS) + " or oauth2_token_command",
                          "no credentials")
    elif master is not None and (password is not None or oauth is not None):
        node.problems.add(node.sub("master_user"), "either the mailbox's own password or a "
                          "master user", "both")
    username = (node.get("username", cr.as_str, "a user name", address or "")
                if master is not None and address else
                node.require("username", cr.as_str, "a user name") or "")
    poll = node.get("poll_interval", cr.as_duration, "a duration such as 60s", cr.as_duration(60))
    if poll.total_seconds() < 0.1:
        node.problems.add(node.sub("poll_interval"), "at least 0.1s", str(poll))
    return ImapSettings(
        host=node.require("host", cr.as_str, "a host name") or "localhost",
        port=node.get("port", cr.as_port, "a port number", default_port),
        tls=tls,
        username=username,
        password=password,
        oauth2_token_command=oauth,
        folders=node.get("folders", cr.as_str_list, "a list of folder names", ("INBOX",)),
        poll_interval=poll,
        idle=node.get("idle", cr.as_bool, "true or false", True),
        timeout=node.get("timeout", cr.as_duration, "a duration such as 30s",
                         cr.as_duration(30)).total_seconds(),
        master_user=master[0] if master else None,
        master_password=master[1] if master else None,
        master_separator=node.get("master_separator", cr.as_str, "a separator such as *", None),
        push=node.get("push", cr.as_bool, "true or false", False),
    )
