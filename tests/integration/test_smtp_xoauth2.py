"""SMTP AUTH XOAUTH2 with a token command, against a real aiosmtpd server that only takes XOAUTH2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from awayd.adapters.secrets import resolve_secret
from awayd.adapters.smtp import SmtpSender
from awayd.config.model import SmtpSettings, TlsSettings
from awayd.errors import SendError
from tests.integration.oauthsink import OAuthSink, token_script
from tests.integration.smtpsink import SmtpSink

TOKEN = "ya29.a0-test-access-token"
MESSAGE = b"From: me@example.org\r\nTo: bob@example.net\r\nSubject: Auto: hi\r\n\r\nAway.\r\n"


@pytest.fixture
def oauth_sink() -> Iterator[OAuthSink]:
    sink = OAuthSink({TOKEN})
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def settings(sink: SmtpSink, command: tuple[str, ...], username: str = "me@example.org") -> SmtpSettings:
    return SmtpSettings(host=sink.host, port=sink.port, tls=TlsSettings(security="none"),
                        username=username, oauth2_token_command=command, timeout=5.0)


def test_reply_is_sent_after_xoauth2_with_the_token_the_command_printed(
    oauth_sink: OAuthSink, tmp_path: Path
) -> None:
    command = (str(token_script(tmp_path / "token", TOKEN)),)
    with SmtpSender(settings(oauth_sink, command), resolve_secret) as sender:
        sender.send("", "bob@example.net", MESSAGE)
    assert oauth_sink.attempts == [("me@example.org", TOKEN)]
    [mail] = oauth_sink.wait_for(1)
    assert mail.rcpt_tos == ("bob@example.net",)


def test_refused_token_is_reported_with_the_servers_reply_and_never_quoted(
    oauth_sink: OAuthSink, tmp_path: Path
) -> None:
    command = (str(token_script(tmp_path / "token", "expired-token-value")),)
    with SmtpSender(settings(oauth_sink, command), resolve_secret) as sender, \
            pytest.raises(SendError) as info:
        sender.send("", "bob@example.net", MESSAGE)
    text = str(info.value)
    assert info.value.code == 535
    assert "AUTH refused: 535" in text
    assert "token refused" in text
    assert "expired-token-value" not in text
    assert info.value.transient  # the reply waits for a fixed token
    assert oauth_sink.messages == []


def test_failing_token_command_names_the_command(oauth_sink: OAuthSink, tmp_path: Path) -> None:
    script = tmp_path / "token"
    script.write_text("#!/bin/sh\nexit 3\n", encoding="utf-8")
    script.chmod(0o755)
    with SmtpSender(settings(oauth_sink, (str(script),)), resolve_secret) as sender, \
            pytest.raises(SendError) as info:
        sender.send("", "bob@example.net", MESSAGE)
    assert "OAuth2 token" in str(info.value)
    assert "exited with status 3" in str(info.value)
    assert oauth_sink.attempts == []


def test_server_without_xoauth2_is_a_clear_error(smtp_sink: SmtpSink, tmp_path: Path) -> None:
    command = (str(token_script(tmp_path / "token", TOKEN)),)
    with SmtpSender(settings(smtp_sink, command), resolve_secret) as sender, \
            pytest.raises(SendError, match="AUTH XOAUTH2 is not offered"):
        sender.send("", "bob@example.net", MESSAGE)
    assert smtp_sink.messages == []
