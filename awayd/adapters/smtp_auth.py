"""SMTP AUTH for a connected smtplib client: a password (AUTH PLAIN/LOGIN) or OAuth2 (XOAUTH2)."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

from awayd.config.model import SecretSource, SmtpSettings
from awayd.errors import AwaydError, SendError


def xoauth2_response(username: str, token: str) -> str:
    """The XOAUTH2 initial client response (before base64, which smtplib adds)."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01"


def authenticate(conn: smtplib.SMTP, settings: SmtpSettings,
                 resolve: Callable[[SecretSource], str]) -> None:
    """Log in as `settings.username` (nothing to do without one).

    Raises:
        SendError: no usable secret, or the server does not offer XOAUTH2 (permanent);
            smtplib.SMTPAuthenticationError and other smtplib errors pass through for the
            caller, which names the stage and the reply.
    """
    if settings.username is None:
        return
    where = f"SMTP {settings.host}:{settings.port}"
    if settings.oauth2_token_command is not None:
        token = _secret(SecretSource(command=settings.oauth2_token_command), resolve, where,
                        "OAuth2 token")
        offered = conn.esmtp_features.get("auth", "").upper().split()
        if "XOAUTH2" not in offered:
            raise SendError(f"{where}: AUTH XOAUTH2 is not offered (server offers: "
                            f"{' '.join(offered) or 'no AUTH'})", transient=False)
        username = settings.username
        # After a refused token the server sends a 334 challenge with JSON details; the
        # client answers with an empty line and then gets the final 535 (RFC 7628 §3.2.3).
        conn.auth("XOAUTH2",
                  lambda challenge=None: "" if challenge is not None
                  else xoauth2_response(username, token),
                  initial_response_ok=True)
        return
    if settings.password is None:
        raise SendError(f"{where}: username is set but no password source", transient=False)
    login_once(conn, settings.username, _secret(settings.password, resolve, where, "password"))


def _secret(source: SecretSource, resolve: Callable[[SecretSource], str], where: str,
            what: str) -> str:
    try:
        return resolve(source)
    except AwaydError as err:
        # Transient: an unreadable password file is fixed by the operator, not the sender.
        raise SendError(f"{where}: cannot get the {what} ({source.describe()}): {err}",
                        transient=True) from err


#: The mechanisms we speak, in order of preference; the first the server offers is used.
AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


def login_once(conn: smtplib.SMTP, username: str, password: str) -> None:
    """Authenticate with exactly one mechanism: the first of AUTH_MECHANISMS the server offers.

    smtplib's login() tries the next mechanism after a 535, so a wrong password cost two failed
    logins (PLAIN, then LOGIN) on every retry: enough to trip fail2ban on the relay.

    Raises:
        smtplib.SMTPAuthenticationError: the server refused the credentials.
        smtplib.SMTPNotSupportedError: the server offers no AUTH (often only after STARTTLS).
        smtplib.SMTPException: the server offers none of our mechanisms.
    """
    if not conn.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("the server does not offer AUTH")
    offered = conn.esmtp_features["auth"].upper().split()
    mechanism = next((m for m in AUTH_MECHANISMS if m in offered), None)
    if mechanism is None:
        raise smtplib.SMTPException(
            f"the server offers AUTH {' '.join(offered)}; awayd speaks {', '.join(AUTH_MECHANISMS)}")
    conn.user, conn.password = username, password
    authobject = getattr(conn, "auth_" + mechanism.lower().replace("-", "_"))
    conn.auth(mechanism, authobject, initial_response_ok=True)
