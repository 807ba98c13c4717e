"""Config of a mail host: Dovecot master-user login and the push endpoint with its sweep."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from awayd.config import read as cr
from awayd.config.model import Mailbox, PushSettings, SecretSource
from awayd.config.read import Node, Problems

#: Reads one secret source among the given keys (config._secret).
SecretReader = Callable[[Node, tuple[str, ...]], SecretSource | None]
TOKEN_KEYS = ("token_file", "token_env", "token_command", "token_credential")
PUSH_KEYS = frozenset({"listen", "sweep_interval", "workers", "pool", *TOKEN_KEYS})


def positive_duration(value: object) -> timedelta:
    duration = cr.as_duration(value)
    if duration <= timedelta(0):
        raise ValueError
    return duration


def master_login(node: Node, read_secret: SecretReader,
                 keys: tuple[str, ...]) -> tuple[str, SecretSource] | None:
    """(master_user, its secret) when the imap section logs in through a Dovecot master user."""
    secret = read_secret(node, keys)
    user = node.get("master_user", cr.as_str, "the master user's name", None)
    if user is None:
        if secret is not None:
            node.problems.add(node.sub("master_user"), "the master user that "
                              "master_password_* belongs to")
        return None
    if secret is None:
        node.problems.add(node.sub("master_user"), "one of " + ", ".join(keys)
                          + " beside it", "no master password")
        return None
    return user, secret


def parse_push(node: Node, read_secret: SecretReader) -> PushSettings | None:
    node.reject_unknown(PUSH_KEYS)
    listen = node.require("listen", _push_listen, "127.0.0.1:PORT, localhost:PORT or unix:/PATH")
    token = read_secret(node, TOKEN_KEYS)
    if token is None:
        node.problems.add(node.path, "one of " + ", ".join(TOKEN_KEYS), "no token")
    sweep = node.get("sweep_interval", positive_duration, "a duration above 0 such as 5m",
                     timedelta(minutes=5))
    workers = node.get("workers", cr.as_positive_int, "a positive number", 8)
    pool = node.get("pool", cr.as_int, "a number of connections (0 or more)", 64)
    if listen is None or token is None:
        return None
    return PushSettings(listen=listen, token=token, sweep_interval=sweep, workers=workers,
                        pool=max(0, pool))


def _push_listen(value: object) -> str:
    """Loopback only: the endpoint takes a bearer token, not TLS."""
    text = cr.as_str(value)
    if text.startswith("unix:/"):
        return text
    host, sep, port = text.rpartition(":")
    if not sep or host not in ("127.0.0.1", "localhost", "[::1]") or not port.isdigit() or not (
            0 < int(port) < 65536):
        raise ValueError
    return text


def check_push(push: PushSettings | None, mailboxes: list[Mailbox], problems: Problems) -> None:
    pushed = [m for m in mailboxes if m.imap is not None and m.imap.push]
    if pushed and push is None:
        problems.add("push", "a push section (listen, token_*) for mailboxes with imap push: "
                     "true", hint=f"mailbox {pushed[0].name} and {len(pushed) - 1} more")
    users: dict[tuple[str, int, str], str] = {}
    for mb in pushed:
        assert mb.imap is not None
        key = (mb.imap.host, mb.imap.port, mb.imap.username.lower())
        if key in users:
            problems.add("mailboxes", "one mailbox per IMAP user in push mode (events name the "
                         "user)", f"{users[key]!r} and {mb.name!r} both log in as "
                         f"{mb.imap.username}")
        users[key] = mb.name
