"""OAuth2 for both sides: IMAP XOAUTH2 checked by Dovecot's oauth2 passdb (token introspection),
SMTP XOAUTH2 at aiosmtpd; a personal config runs `awayd run` and answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from awayd.adapters.imap_conn import close_quietly, open_client
from awayd.adapters.secrets import resolve_secret
from awayd.errors import SourceError
from tests.integration.daemon import Daemons, body_text, message
from tests.integration.dovecot import DOMAIN, unavailable_reason
from tests.integration.dovecot_oauth import Introspection, OAuthDovecot
from tests.integration.oauthsink import OAuthSink, token_script


@pytest.fixture(scope="module")
def introspection() -> Iterator[Introspection]:
    server = Introspection()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def oauth_dovecot(introspection: Introspection) -> Iterator[OAuthDovecot]:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("AWAYD_REQUIRE_DOVECOT") == "1":
            pytest.fail(f"AWAYD_REQUIRE_DOVECOT=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    server = OAuthDovecot.create_with(introspection)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def user(introspection: Introspection) -> str:
    return f"me-{uuid.uuid4().hex[:10]}@{DOMAIN}"


def test_imap_xoauth2_token_is_checked_by_the_provider(
    oauth_dovecot: OAuthDovecot, introspection: Introspection, user: str, tmp_path: Path
) -> None:
    token = f"imap-{uuid.uuid4().hex}"
    introspection.tokens[token] = user
    settings = replace(oauth_dovecot.imap_settings(user), password=None,
                       oauth2_token_command=(str(token_script(tmp_path / "tok", token)),))
    client = open_client(settings, resolve_secret=resolve_secret)
    try:
        assert client.select_folder("INBOX", readonly=True)[b"UIDNEXT"] >= 1
    finally:
        close_quietly(client)
    assert token in introspection.asked


def test_imap_xoauth2_with_a_token_the_provider_refuses_fails_clearly(
    oauth_dovecot: OAuthDovecot, introspection: Introspection, user: str, tmp_path: Path
) -> None:
    settings = replace(oauth_dovecot.imap_settings(user), password=None,
                       oauth2_token_command=(str(token_script(tmp_path / "tok", "revoked")),))
    with pytest.raises(SourceError) as info:
        open_client(settings, resolve_secret=resolve_secret)
    assert f"IMAP login to 127.0.0.1:{oauth_dovecot.imap_port} as {user} failed" in str(info.value)
    assert "revoked" not in str(info.value)
    assert "revoked" in introspection.asked


def test_the_password_is_no_token(oauth_dovecot: OAuthDovecot, user: str, tmp_path: Path) -> None:
    """XOAUTH2 goes to the provider only: the account's password does not pass as a token."""
    settings = replace(oauth_dovecot.imap_settings(user), password=None,
                       oauth2_token_command=(str(token_script(tmp_path / "tok", "pw")),))
    with pytest.raises(SourceError, match="login"):
        open_client(settings, resolve_secret=resolve_secret)


def test_personal_mailbox_with_oauth2_for_imap_and_smtp_answers(
    oauth_dovecot: OAuthDovecot, introspection: Introspection, user: str, tmp_path: Path
) -> None:
    imap_token, smtp_token = f"i-{uuid.uuid4().hex}", f"s-{uuid.uuid4().hex}"
    introspection.tokens[imap_token] = user
    sink = OAuthSink({smtp_token})
    sink.start()
    try:
        home = tmp_path / "home"
        conf_dir = home / ".config" / "awayd"
        conf_dir.mkdir(parents=True)
        imap_cmd = token_script(conf_dir / "imap-token", imap_token)
        smtp_cmd = token_script(conf_dir / "smtp-token", smtp_token)
        config = conf_dir / "config.yaml"
        config.write_text(yaml.safe_dump({
            "state": {"path": "~/.local/state/awayd/state.db"},
            "smtp": {"host": sink.host, "port": sink.port, "security": "none", "username": user,
                     "oauth2_token_command": ["./smtp-token"]},
            "mailboxes": [{
                "name": "me", "address": user, "timezone": "Europe/Paris", "language": "en",
                "imap": {"host": oauth_dovecot.host, "port": oauth_dovecot.imap_port,
                         "security": "none", "username": user, "poll_interval": "0.1s",
                         "oauth2_token_command": [str(imap_cmd)]},
                "rules": [{"name": "holidays", "text": "Hello {{ sender.first_name }}, away."}],
            }],
        }, sort_keys=False), encoding="utf-8")
        assert smtp_cmd.exists()
        with Daemons(tmp_path) as daemons:
            daemon = daemons.start(config, env={"HOME": str(home)})
            daemon.wait_watching()
            oauth_dovecot.deliver(user, message("bob@example.net", user, name="Bob Martin"),
                                  "bob@example.net")
            [reply] = sink.wait_for(1, timeout=30)
            assert daemon.stop() == 0
        assert reply.rcpt_tos == ("bob@example.net",)
        assert body_text(reply.content).startswith("Hello Bob, away.")
        assert (user, smtp_token) in sink.attempts
        assert imap_token in introspection.asked
        assert (home / ".local/state/awayd/state.db").exists()
    finally:
        sink.stop()
