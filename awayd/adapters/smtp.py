"""Send reply messages over SMTP (smtplib) on one reused connection; failures become SendError."""

from __future__ import annotations

import smtplib
import ssl
import threading
from collections.abc import Callable
from types import TracebackType

from awayd.adapters.smtp_auth import authenticate
from awayd.config.model import SecretSource, SmtpSettings, TlsSettings
from awayd.core.wire import needs_smtputf8, without_utf8_ids
from awayd.errors import ConfigError, SendError

#: RFC 3461: never send a DSN about an auto-reply, and return headers only if one is sent anyway.
_DSN_RCPT_OPTIONS = ("NOTIFY=NEVER",)
_DSN_MAIL_OPTIONS = ("RET=HDRS",)
_FORBIDDEN_IN_ADDRESS = frozenset("\r\n<> \t")


class _StaleConnectionError(Exception):
    """A reused connection died before any message data went out: safe to retry once."""


def make_tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """Return a client context that verifies the server unless `tls.verify` is off.

    Raises:
        ConfigError: `tls.ca_file` cannot be loaded.
    """
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file is not None else None)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"ca_file {tls.ca_file}: cannot load: {err}") from err
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class SmtpSender:
    """Deliver messages through one SMTP server, keeping the connection open between sends.

    Thread-safe: sends are serialised on the one connection. Retrying and backoff are the
    caller's job; the sender only reconnects once when the server dropped an idle connection.
    """

    def __init__(self, settings: SmtpSettings, secret_resolver: Callable[[SecretSource], str]) -> None:
        """Raises ConfigError when the TLS settings cannot be turned into a context."""
        self._settings = settings
        self._resolve = secret_resolver
        self._where = f"{settings.host}:{settings.port}"
        self._context = make_tls_context(settings.tls) if settings.tls.security != "none" else None
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, envelope_from: str, recipient: str, message: bytes) -> None:
        """Send `message` as is from `envelope_from` ("" = null sender `MAIL FROM:<>`).

        `NOTIFY=NEVER` (and `RET=HDRS`) go with the envelope when the server offers DSN.

        Raises:
            SendError: `transient` for a 4xx reply, a network, TLS or timeout error; permanent
                for a 5xx reply or an envelope the server cannot take. `code` is the SMTP
                reply code when there was one.
        """
        _check_address(recipient, "recipient", allow_empty=False)
        _check_address(envelope_from, "envelope sender", allow_empty=True)
        with self._lock:
            reused = self._conn is not None
            conn = self._conn if self._conn is not None else self._connect()
            try:
                self._transaction(conn, envelope_from, recipient, message, may_retry=reused)
            except _StaleConnectionError:
                conn = self._connect()
                self._transaction(conn, envelope_from, recipient, message, may_retry=False)

    def close(self) -> None:
        """Say QUIT and close the connection, if any; never raises."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            finally:
                conn.close()

    def _connect(self) -> smtplib.SMTP:
        settings = self._settings
        security = settings.tls.security
        stage = "connect"
        try:
            if security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    settings.host,
                    settings.port,
                    local_hostname=settings.helo,
                    timeout=settings.timeout,
                    context=self._context,
                )
            else:
                conn = smtplib.SMTP(
                    settings.host,
                    settings.port,
                    local_hostname=settings.helo,
                    timeout=settings.timeout,
                )
            try:
                stage = "EHLO"
                conn.ehlo_or_helo_if_needed()
                if security == "starttls":
                    stage = "STARTTLS"
                    if not conn.has_extn("starttls"):
                        raise SendError(
                            f"SMTP {self._where}: server does not offer STARTTLS",
                            transient=False,
                        )
                    code, reply = conn.starttls(context=self._context)
                    if code != 220:
                        raise self._reply_error(stage, code, reply)
                    stage = "EHLO"
                    conn.ehlo_or_helo_if_needed()
                if settings.username is not None:
                    stage = "AUTH"
                    authenticate(conn, settings, self._resolve)
            except BaseException:
                conn.close()
                raise
        except SendError as err:
            raise _setup_failure(err) from err
        except smtplib.SMTPResponseException as err:
            raise _setup_failure(self._reply_error(stage, err.smtp_code, err.smtp_error),
                                 auth=stage == "AUTH") from err
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPNotSupportedError,
                smtplib.SMTPException) as err:
            # AUTH not offered (often only after STARTTLS), a dropped greeting, ...
            raise SendError(f"SMTP {self._where}: {stage}: {err}", transient=True,
                            scope="relay") from err
        except OSError as err:
            raise SendError(
                f"SMTP {self._where}: {stage} failed: {_describe_os_error(err)}", transient=True,
                scope="relay",
            ) from err
        self._conn = conn
        return conn

    def _transaction(
        self,
        conn: smtplib.SMTP,
        envelope_from: str,
        recipient: str,
        message: bytes,
        *,
        may_retry: bool,
    ) -> None:
        mail_options: list[str] = []
        rcpt_options: list[str] = []
        if not (envelope_from + recipient).isascii() or needs_smtputf8(message):
            if conn.has_extn("smtputf8"):
                mail_options.append("SMTPUTF8")
            else:
                message = self._ascii_only(envelope_from, recipient, message)
        if not message.isascii() and conn.has_extn("8bitmime"):
            mail_options.append("BODY=8BITMIME")
        if conn.has_extn("dsn"):
            mail_options.extend(_DSN_MAIL_OPTIONS)
            rcpt_options.extend(_DSN_RCPT_OPTIONS)
        stage = "MAIL FROM"
        try:
            code, reply = conn.mail(envelope_from, mail_options)
            if code == 421 and may_retry:
                raise _StaleConnectionError
            if code != 250:
                raise self._reply_error(stage, code, reply)
            stage = "RCPT TO"
            code, reply = conn.rcpt(recipient, rcpt_options)
            if code not in (250, 251):
                raise self._reply_error(stage, code, reply)
            stage = "DATA"
            code, reply = conn.data(message)
            if code != 250:
                raise self._reply_error(stage, code, reply)
        except _StaleConnectionError:
            self._discard(conn)
            raise
        except SendError as err:
            self._recover(conn, err.code)
            raise
        except smtplib.SMTPResponseException as err:
            self._recover(conn, err.smtp_code)
            raise self._reply_error(stage, err.smtp_code, err.smtp_error) from err
        except smtplib.SMTPServerDisconnected as err:
            self._discard(conn)
            if may_retry and stage != "DATA":
                raise _StaleConnectionError from err
            raise SendError(f"SMTP {self._where}: {stage}: {err}", transient=True,
                            scope="relay") from err
        except smtplib.SMTPException as err:
            self._recover(conn, None)
            raise SendError(f"SMTP {self._where}: {stage}: {err}", transient=False) from err
        except OSError as err:
            self._discard(conn)
            if may_retry and stage != "DATA":
                raise _StaleConnectionError from err
            raise SendError(
                f"SMTP {self._where}: {stage} failed: {_describe_os_error(err)}", transient=True,
                scope="relay",
            ) from err

    def _ascii_only(self, envelope_from: str, recipient: str, message: bytes) -> bytes:
        """The message for a relay without SMTPUTF8 (RFC 6531), or a permanent SendError."""
        ascii_message = without_utf8_ids(message) if (envelope_from + recipient).isascii() else None
        if ascii_message is None:
            raise SendError(
                f"SMTP {self._where}: the relay does not offer SMTPUTF8, which this reply needs "
                "for a non-ASCII address",
                transient=False,
            )
        return ascii_message

    def _recover(self, conn: smtplib.SMTP, code: int | None) -> None:
        """After a refused transaction, RSET so the connection can carry the next message."""
        if code == 421:
            self._discard(conn)
            return
        try:
            code, _reply = conn.rset()
        except (smtplib.SMTPException, OSError):
            code = 0
        if code != 250:
            self._discard(conn)

    def _discard(self, conn: smtplib.SMTP) -> None:
        conn.close()
        if self._conn is conn:
            self._conn = None

    def _reply_error(self, stage: str, code: int, reply: bytes | str) -> SendError:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
        text = " ".join(text.split())[:300]
        return SendError(
            f"SMTP {self._where}: {stage} refused: {code} {text}",
            transient=code < 500,
            code=code,
            scope="relay" if code == 421 else "message",  # 421: the service is closing
        )


def _setup_failure(err: SendError, *, auth: bool = False) -> SendError:
    """A refused connection set-up (EHLO, STARTTLS, AUTH) is our configuration, not the reply:
    keep the reply queued (transient) until the operator fixes it or max_delay drops it.
    A 5xx to AUTH means the credentials were refused (scope "auth")."""
    refused = auth and err.code is not None and err.code >= 500
    return SendError(str(err), transient=True, code=err.code, scope="auth" if refused else "relay")


def _describe_os_error(err: OSError) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {err.verify_message}"
    if isinstance(err, TimeoutError):
        return "timed out"
    return str(err) or type(err).__name__


def _check_address(address: str, what: str, *, allow_empty: bool) -> None:
    if (not address and not allow_empty) or _FORBIDDEN_IN_ADDRESS.intersection(address):
        raise SendError(f"SMTP: {what} {address!r} cannot go into an envelope", transient=False)
