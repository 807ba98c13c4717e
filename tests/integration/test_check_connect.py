"""`awayd check --connect` against the real Dovecot and aiosmtpd: one line per server."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from awayd.adapters.secrets import resolve_secret
from awayd.cli.check_connect import exit_code, probe_smtp
from awayd.config.model import SmtpSettings, TlsSettings
from tests.integration.daemon import awayd, mailbox, write_config
from tests.integration.dovecot import Dovecot, free_port
from tests.integration.oauthsink import OAuthSink, token_script
from tests.integration.smtpsink import SmtpSink


@pytest.fixture
def oauth_sink() -> Iterator[OAuthSink]:
    sink = OAuthSink({"good-token"})
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def _row(out: str, prefix: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith(prefix)]
    return line


def test_every_server_logs_in_and_idle_is_reported(
    tmp_path: Path, dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink
) -> None:
    config = write_config(tmp_path / "c.yaml", sink=smtp_sink,
                          mailboxes=[mailbox("alice", mail_user, dovecot)])
    done = awayd("check", "--connect", config=config)
    assert done.returncode == 0, done.stderr
    imap = _row(done.stdout, f"imap 127.0.0.1:{dovecot.imap_port} (none)")
    assert mail_user in imap
    assert imap.split()[4:] == ["yes", "ok,", "folders", "INBOX"]
    smtp = _row(done.stdout, f"smtp 127.0.0.1:{smtp_sink.port} (none)")
    assert smtp.endswith("ok")


def test_a_refused_password_and_a_missing_folder_exit_78(
    tmp_path: Path, dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink
) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-password\n", encoding="utf-8")
    other = dovecot.add_user(f"x-{mail_user}")
    config = write_config(tmp_path / "c.yaml", sink=smtp_sink, mailboxes=[
        mailbox("alice", mail_user, dovecot, password_file=wrong),
        mailbox("bob", other, dovecot, folders=("INBOX", "No-Such-Folder")),
        mailbox("carol", dovecot.add_user(f"c-{mail_user}"), dovecot, save_copy="Sent-Missing"),
    ])
    done = awayd("check", "--connect", config=config)
    assert done.returncode == 78, done.stdout + done.stderr
    alice = _row(done.stdout, f"imap 127.0.0.1:{dovecot.imap_port} (none)  {mail_user} ")
    assert "FAILED: IMAP login" in alice
    assert "not-the-password" not in done.stdout
    bob = _row(done.stdout, f"imap 127.0.0.1:{dovecot.imap_port} (none)  {other} ")
    assert "FAILED:" in bob
    assert "No-Such-Folder" in bob
    carol = _row(done.stdout, f"imap 127.0.0.1:{dovecot.imap_port} (none)  c-{mail_user} ")
    assert "FAILED:" in carol
    assert "Sent-Missing" in carol


def test_an_unreachable_server_exits_69(
    tmp_path: Path, dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink
) -> None:
    config = write_config(tmp_path / "c.yaml", sink=smtp_sink,
                          mailboxes=[mailbox("alice", mail_user, dovecot, port=free_port())])
    done = awayd("check", "--connect", config=config)
    assert done.returncode == 69, done.stdout + done.stderr
    assert "FAILED: " in done.stdout


def test_smtp_xoauth2_login_is_checked_and_a_refused_token_is_shown(
    tmp_path: Path, dovecot: Dovecot, mail_user: str, oauth_sink: OAuthSink
) -> None:
    good = token_script(tmp_path / "good", "good-token")
    bad = token_script(tmp_path / "bad", "stale-token")
    boxes = []
    for name, script in (("good", good), ("bad", bad)):
        box = mailbox(name, dovecot.add_user(f"{name}-{mail_user}"), dovecot)
        box["smtp"] = {"host": oauth_sink.host, "port": oauth_sink.port, "security": "none",
                       "username": f"{name}@example.org", "oauth2_token_command": [str(script)]}
        boxes.append(box)
    config = write_config(tmp_path / "c.yaml", sink=oauth_sink, mailboxes=boxes)
    done = awayd("check", "--connect", config=config)
    assert done.returncode == 78, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines()
            if line.startswith(f"smtp 127.0.0.1:{oauth_sink.port}")]
    assert len(rows) == 3  # the top-level relay (no AUTH) and each mailbox's own
    assert any("good@example.org" in r and r.endswith("ok, logged in") for r in rows)
    assert any("bad@example.org" in r and "FAILED: AUTH refused: 535" in r for r in rows)
    assert "stale-token" not in done.stdout
    assert ("good@example.org", "good-token") in oauth_sink.attempts


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ssl.SSLContext]:
    ours, other = trustme.CA(), trustme.CA()
    directory = tmp_path_factory.mktemp("ca")
    ours.cert_pem.write_to_path(str(directory / "ca.pem"))
    other.cert_pem.write_to_path(str(directory / "other.pem"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ours.issue_cert("127.0.0.1").configure_cert(server)
    return directory / "ca.pem", directory / "other.pem", server


def _smtp(sink: SmtpSink, ca_file: Path | None) -> SmtpSettings:
    return SmtpSettings(host=sink.host, port=sink.port, timeout=5.0,
                        tls=TlsSettings(security="starttls", ca_file=ca_file))


def test_smtp_starttls_is_probed_with_the_configured_ca(ca: tuple[Path, Path, ssl.SSLContext]) -> None:
    ours, other, server = ca
    sink = SmtpSink(tls_context=server)
    sink.start()
    try:
        good = probe_smtp(_smtp(sink, ours), resolve_secret)
        untrusted = probe_smtp(_smtp(sink, other), resolve_secret)
    finally:
        sink.stop()
    assert good.ok
    assert good.detail == "ok"
    assert not untrusted.ok
    assert not untrusted.transient  # a setting to fix: exit 78
    assert "TLS certificate not trusted" in untrusted.detail
    assert exit_code([good, untrusted]) == 78


def test_smtp_without_starttls_is_a_setting_problem(smtp_sink: SmtpSink) -> None:
    probe = probe_smtp(_smtp(smtp_sink, None), resolve_secret)
    assert not probe.ok
    assert probe.detail == "the server does not offer STARTTLS"
    assert exit_code([probe]) == 78
