"""Open an authenticated imapclient connection (TLS, STARTTLS, loopback plain), map its errors."""

from __future__ import annotations

import ipaddress
import re
import select
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Protocol

import structlog
from imapclient import IMAPClient
from imapclient import exceptions as imap_errors

from awayd.config.model import ImapSettings, SecretSource, TlsSettings
from awayd.errors import AwaydError, SourceError

__all__ = [
    "SecretResolver",
    "WarningLogger",
    "close_quietly",
    "connection_lost",
    "is_loopback",
    "master_login",
    "open_client",
    "scan_responses",
    "ssl_context",
    "take_stashed_news",
    "translate_errors",
]

#: Turns a configured secret source into the secret text (awayd.adapters.secrets.resolve_secret).
SecretResolver = Callable[[SecretSource], str]

#: Response codes (RFC 5530) after which retrying the same command cannot help.
_PERMANENT_CODES = frozenset(
    {"NONEXISTENT", "TRYCREATE", "NOPERM", "CANNOT", "AUTHENTICATIONFAILED",
     "AUTHORIZATIONFAILED", "EXPIRED", "PRIVACYREQUIRED", "CLIENTBUG"}
)  # fmt: skip
#: Response codes that promise a later retry may succeed.
_TRANSIENT_CODES = frozenset({"UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG", "OVERQUOTA"})
_CODE = re.compile(r"\[([A-Z-]+)")
#: imaplib's stash of untagged responses nobody asked for; mailbox-size news lands here.
_STASHED = ("EXISTS", "RECENT", "EXPUNGE", "FETCH")
#: Seconds a LOGOUT may take when closing; a dead server must not hold up a shutdown.
_CLOSE_TIMEOUT = 5.0


class WarningLogger(Protocol):
    """The one logging call this adapter makes (structlog's bound loggers fit)."""

    def warning(self, event: str, **kw: Any) -> Any: ...


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals; no name is resolved."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _where(settings: ImapSettings) -> str:
    return f"IMAP {settings.username} at {settings.host}:{settings.port}"


def ssl_context(tls: TlsSettings, settings: ImapSettings, log: WarningLogger) -> ssl.SSLContext:
    """Return a client context: system CAs, or only `tls.ca_file` when given; hostname checked.

    Raises:
        SourceError: the CA file cannot be loaded (not transient).
    """
    cafile = str(tls.ca_file) if tls.ca_file is not None else None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as err:
        raise SourceError(
            f"{_where(settings)}: cannot load CA file {tls.ca_file}: {err}", transient=False
        ) from err
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        log.warning(
            "imap.tls_verify_disabled",
            host=settings.host,
            port=settings.port,
            username=settings.username,
            hint="the server certificate is not checked; anyone on the path can read the password",
        )
    return context


def _text(err: BaseException) -> str:
    """The server's words: imapclient often carries them as bytes, whose repr reads badly."""
    parts = [a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in err.args]
    text = " ".join(parts) or type(err).__name__
    # LoginError wraps the inner error's str(), which is already a bytes repr: b'...'.
    if text.startswith(("b'", 'b"')) and text.endswith(text[1]) and len(text) >= 3:
        text = text[2:-1]
    return text


def _refusal_is_transient(text: str, *, default: bool) -> bool:
    codes = set(_CODE.findall(text.upper()))
    if codes & _PERMANENT_CODES:
        return False
    if codes & _TRANSIENT_CODES:
        return True
    return default


@contextmanager
def translate_errors(settings: ImapSettings, what: str, *, refusal_transient: bool = True) -> Iterator[None]:
    """Re-raise imapclient, socket and TLS errors inside the block as SourceError.

    Network trouble and timeouts are transient; a refused login, a missing capability and an
    untrusted certificate are not. A NO/BAD answer is permanent when its response code says
    so (NONEXISTENT, NOPERM, ...), transient when the code says so (UNAVAILABLE, INUSE, ...),
    else `refusal_transient`: pass False where a refusal means configuration (EXAMINE of a
    folder, which Dovecot refuses without a code). Messages name host and user, never the
    password.
    """
    where = _where(settings)
    try:
        yield
    except AwaydError:
        raise
    except imap_errors.LoginError as err:
        text = _text(err)
        # Dovecot answers [UNAVAILABLE] when its auth backend is down: worth retrying.
        raise SourceError(
            f"IMAP login to {settings.host}:{settings.port} as {settings.username}"
            + (f" through master user {settings.master_user}" if settings.master_user else "")
            + f" failed: {text}",
            transient="UNAVAILABLE" in text.upper(),
        ) from err
    except imap_errors.CapabilityError as err:
        raise SourceError(f"{where}: {what}: {_text(err)}", transient=False) from err
    except imap_errors.IMAPClientAbortError as err:
        raise SourceError(f"{where}: connection lost during {what}: {_text(err)}") from err
    except imap_errors.IMAPClientError as err:
        text = _text(err)
        transient = _refusal_is_transient(text, default=refusal_transient)
        raise SourceError(f"{where}: {what} failed: {text}", transient=transient) from err
    except ssl.SSLCertVerificationError as err:
        raise SourceError(
            f"{where}: the server certificate is not trusted ({err.verify_message});"
            " set tls ca_file to the CA that signed it",
            transient=False,
        ) from err
    except (OSError, EOFError) as err:
        # Includes timeouts, refused connections, DNS failures and TLS record errors.
        raise SourceError(f"{where}: {what} failed: {err or type(err).__name__}") from err


def connection_lost(err: SourceError) -> bool:
    """True when `err` left the connection unusable (not a mere NO to one command)."""
    cause = err.__cause__
    return not isinstance(cause, imap_errors.IMAPClientError) or isinstance(
        cause, imap_errors.IMAPClientAbortError
    )


def _secret(settings: ImapSettings, resolve: SecretResolver) -> tuple[str, str]:
    """Return ("oauth2", token), ("master", master password) or ("password", password)."""
    if settings.oauth2_token_command is not None:
        source, kind = SecretSource(command=settings.oauth2_token_command), "oauth2"
    elif settings.master_user is not None and settings.master_password is not None:
        source, kind = settings.master_password, "master"
    elif settings.password is not None:
        source, kind = settings.password, "password"
    else:
        raise SourceError(
            f"{_where(settings)}: no password source and no oauth2_token_command", transient=False
        )
    try:
        secret = resolve(source)
    except AwaydError as err:
        raise SourceError(
            f"{_where(settings)}: cannot get the {kind} from {source.describe()}: {err}",
            transient=False,
        ) from err
    if not secret:
        raise SourceError(
            f"{_where(settings)}: the {kind} from {source.describe()} is empty", transient=False
        )
    return kind, secret


def open_client(
    settings: ImapSettings,
    *,
    resolve_secret: SecretResolver,
    log: WarningLogger | None = None,
) -> Any:
    """Connect, secure and log in; return the imapclient.IMAPClient (authenticated state).

    `security: none` is refused unless the host is a loopback address, before any socket is
    opened. INTERNALDATE values fetched later come back timezone-aware.

    Raises:
        SourceError: connection, TLS or login failed (see translate_errors for `transient`).
    """
    security = settings.tls.security
    if security == "none" and not is_loopback(settings.host):
        raise SourceError(
            f"{_where(settings)}: security 'none' would send the password in clear text;"
            " it is only allowed to a loopback host (localhost, 127.0.0.1, ::1)."
            " Use security 'tls' (port 993) or 'starttls' (port 143).",
            transient=False,
        )
    logger: WarningLogger = log if log is not None else structlog.get_logger()
    context = ssl_context(settings.tls, settings, logger) if security != "none" else None
    kind, secret = _secret(settings, resolve_secret)
    with translate_errors(settings, "connect"):
        client = IMAPClient(
            settings.host,
            port=settings.port,
            ssl=security == "tls",
            ssl_context=context,
            timeout=settings.timeout,
        )
    # imaplib writes an AUTHENTICATE response and its CRLF in two sends: with Nagle's algorithm
    # the second waits for the server's delayed ACK, 40 ms on every master-user login.
    with suppress(OSError):
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if security == "starttls":
            with translate_errors(settings, "STARTTLS"):
                client.starttls(context)
        with translate_errors(settings, "login"):
            if kind == "oauth2":
                client.oauth2_login(settings.username, secret)
            elif kind == "master":
                master_login(client, settings, secret)
            else:
                client.login(settings.username, secret)
    except BaseException:
        close_quietly(client, logout=False)
        raise
    client.normalise_times = False
    return client


def master_login(client: Any, settings: ImapSettings, secret: str) -> None:
    """Log in as `settings.username` through the Dovecot master user.

    AUTHENTICATE PLAIN with the user as authorization identity when the server offers it (no
    separator that a user name could contain); else, or when `master_separator` is set,
    LOGIN `user*master` (Dovecot's auth_master_user_separator, `*` by default).
    """
    assert settings.master_user is not None
    if settings.master_separator is None and client.has_capability("AUTH=PLAIN"):
        client.plain_login(settings.master_user, secret,
                           authorization_identity=settings.username)
    else:
        separator = settings.master_separator or "*"
        client.login(f"{settings.username}{separator}{settings.master_user}", secret)


def close_quietly(client: Any, *, logout: bool = True) -> None:
    """LOGOUT (bounded by a short timeout) and close the socket; never raises."""
    if logout:
        with suppress(Exception):
            client.socket().settimeout(_CLOSE_TIMEOUT)
            client.logout()  # imaplib closes the socket even when LOGOUT fails
            return
    # Raises on a socket imaplib already closed; that is the state we want anyway.
    with suppress(Exception):
        client.shutdown()


def take_stashed_news(client: Any) -> bool:
    """Empty imaplib's stash of mailbox-size responses; True when an EXISTS was among them.

    Dovecot announces a message that arrived during a command (`* 7 EXISTS`) just before
    that command's tagged reply, so a UID SEARCH can miss the message while its EXISTS is
    swallowed into imaplib's `untagged_responses`, where neither NOOP nor IDLE report it
    again. imapclient has no public view of that dict.
    """
    stash = client._imap.untagged_responses
    news = bool(stash.pop("EXISTS", None))
    for name in _STASHED:
        stash.pop(name, None)
    return news


def scan_responses(responses: Sequence[Any]) -> tuple[bool, bool]:
    """Return (new mail announced, server said BYE) for parsed untagged responses."""
    news = bye = False
    for response in responses:
        if isinstance(response, tuple) and len(response) >= 2:
            news = news or response[1] == b"EXISTS"
            bye = bye or response[0] == b"BYE"
    return news, bye


#: How long a line that has started to arrive may take to complete while idling.
IDLE_LINE_TIMEOUT = 10.0


def _buffered(imap: Any) -> bool:
    """True when imaplib's reader already holds bytes; never blocks (the socket is non-blocking)."""
    try:
        return bool(imap.file.peek(1))
    except (OSError, ValueError):
        return False


def idle_check(client: Any, timeout: float) -> list[Any]:
    """imapclient's idle_check() without its torn-line bug (imapclient issue #519).

    imapclient reads IDLE responses from a non-blocking socket, so a response that arrives in
    two TCP segments looks like a lost connection. Here the wait is non-blocking, but each line
    is read in blocking mode with a timeout, so it is always read whole.
    """
    from imapclient.imapclient import _parse_untagged_response  # noqa: PLC0415

    sock = client.socket()
    imap = client._imap
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    responses: list[Any] = []
    try:
        sock.setblocking(False)
        if not _buffered(imap) and not poller.poll(max(timeout, 0.0) * 1000):
            return responses
        while True:
            sock.settimeout(IDLE_LINE_TIMEOUT)
            line = imap._get_line()
            responses.append(_parse_untagged_response(line))
            sock.setblocking(False)
            if not _buffered(imap) and not poller.poll(0):
                return responses
    finally:
        sock.settimeout(None)
        client._set_read_timeout()
