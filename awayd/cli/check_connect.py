"""`awayd check --connect`: log in to every IMAP and SMTP server once and print one table."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from awayd.config.model import Config, ImapSettings, SecretSource, SmtpSettings
from awayd.errors import AwaydError, SourceError

EX_OK = 0
EX_UNAVAILABLE = 69
EX_CONFIG = 78


@dataclass(frozen=True)
class Probe:
    """The outcome of logging in to one server."""

    server: str  # "imap host:port (tls)"
    user: str
    ok: bool
    transient: bool  # a failure that may pass by itself (network, 4xx) rather than a setting
    detail: str  # "ok, folders INBOX, Sent" or the reason, never a secret
    idle: bool | None = None  # IMAP only: the server offers IDLE


def probe_imap(settings: ImapSettings, resolve: Callable[[SecretSource], str],
               save_copy: str | None = None) -> Probe:
    """Connect, log in, EXAMINE every folder (and the save_copy folder), see whether IDLE is
    offered."""
    from awayd.adapters.imap_conn import close_quietly, open_client, translate_errors  # noqa: PLC0415

    server = f"imap {settings.host}:{settings.port} ({settings.tls.security})"
    try:
        client = open_client(settings, resolve_secret=resolve)
    except SourceError as err:
        return Probe(server, settings.username, False, err.transient, str(err))
    try:
        idle = bool(client.has_capability("IDLE"))
        for folder in (*settings.folders, *([save_copy] if save_copy else [])):
            with translate_errors(settings, f"EXAMINE {folder}", refusal_transient=False):
                client.select_folder(folder, readonly=True)
    except SourceError as err:
        return Probe(server, settings.username, False, err.transient, str(err))
    finally:
        close_quietly(client)
    return Probe(server, settings.username, True, False,
                 "ok, folders " + ", ".join(settings.folders)
                 + (f", copies to {save_copy}" if save_copy else ""), idle)


def probe_smtp(settings: SmtpSettings, resolve: Callable[[SecretSource], str]) -> Probe:
    """Connect, EHLO, STARTTLS when asked, and AUTH when a username is set; send nothing."""
    from awayd.adapters.smtp import make_tls_context  # noqa: PLC0415
    from awayd.adapters.smtp_auth import authenticate  # noqa: PLC0415

    server = f"smtp {settings.host}:{settings.port} ({settings.tls.security})"
    user = settings.username or "-"
    security = settings.tls.security
    stage = "connect"
    try:
        context = make_tls_context(settings.tls) if security != "none" else None
        if security == "tls":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                                  local_hostname=settings.helo, context=context)
        else:
            conn = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout,
                                local_hostname=settings.helo)
        try:
            stage = "EHLO"
            conn.ehlo_or_helo_if_needed()
            if security == "starttls":
                stage = "STARTTLS"
                if not conn.has_extn("starttls"):
                    return Probe(server, user, False, False, "the server does not offer STARTTLS")
                conn.starttls(context=context)
                conn.ehlo()
            stage = "AUTH"
            authenticate(conn, settings, resolve)
            conn.quit()
        finally:
            conn.close()
    except AwaydError as err:
        return Probe(server, user, False, err.transient, str(err))
    except smtplib.SMTPResponseException as err:
        text = err.smtp_error.decode("utf-8", "replace") if isinstance(err.smtp_error, bytes) \
            else str(err.smtp_error)
        return Probe(server, user, False, err.smtp_code < 500,
                     f"{stage} refused: {err.smtp_code} {' '.join(text.split())[:200]}")
    except ssl.SSLCertVerificationError as err:
        return Probe(server, user, False, False,
                     f"{stage}: TLS certificate not trusted ({err.verify_message}); set ca_file")
    except (smtplib.SMTPException, OSError) as err:
        return Probe(server, user, False, True, f"{stage} failed: {err or type(err).__name__}")
    return Probe(server, user, True, False, "ok" + (", logged in" if settings.username else ""))


def probe_all(config: Config, resolve: Callable[[SecretSource], str]) -> list[Probe]:
    """One probe per mailbox's IMAP server and per distinct SMTP relay (the shared one once)."""
    probes = [probe_imap(mb.imap, resolve, mb.save_copy) for mb in config.mailboxes
              if mb.imap is not None]
    relays: list[SmtpSettings] = []
    for smtp in (config.smtp, *(mb.smtp for mb in config.mailboxes)):
        if smtp is not None and smtp not in relays:
            relays.append(smtp)
    return probes + [probe_smtp(smtp, resolve) for smtp in relays]


def render_table(probes: list[Probe]) -> str:
    rows = [("server", "user", "IDLE", "result")]
    for p in probes:
        idle = "-" if p.idle is None else ("yes" if p.idle else "no")
        rows.append((p.server, p.user, idle, p.detail if p.ok else f"FAILED: {p.detail}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True))
                     + "  " + r[3] for r in rows)


def exit_code(probes: list[Probe]) -> int:
    """78 when a server refuses the settings (login, certificate, folder), else 69 when one
    cannot be reached now, else 0."""
    if any(not p.ok and not p.transient for p in probes):
        return EX_CONFIG
    if any(not p.ok for p in probes):
        return EX_UNAVAILABLE
    return EX_OK


def connect_report(config: Config, out: TextIO,
                   resolve: Callable[[SecretSource], str] | None = None) -> int:
    """Probe every server, print the table to `out`, return the exit code."""
    if resolve is None:
        from awayd.adapters.secrets import resolve_secret  # noqa: PLC0415

        resolve = resolve_secret
    probes = probe_all(config, resolve)
    print(render_table(probes), file=out)
    return exit_code(probes)
