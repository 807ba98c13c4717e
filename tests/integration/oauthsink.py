"""An SMTP sink that takes AUTH XOAUTH2 only (as Gmail and Microsoft 365 do), and token scripts."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import AuthResult

from tests.integration.smtpsink import SmtpSink

#: A refused token gets this challenge first (Gmail's shape), then 535 after the empty answer.
REFUSAL_CHALLENGE = '{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}'
REFUSAL = "535 5.7.8 Username and Password not accepted (token refused)"


class OAuthSink(SmtpSink):
    """Accepts mail only after AUTH XOAUTH2 with a token from `tokens`; records each login."""

    def __init__(self, tokens: set[str], **smtp_kwargs: Any) -> None:
        super().__init__(auth_require_tls=False,
                         auth_exclude_mechanism=["LOGIN", "PLAIN"], **smtp_kwargs)
        self.tokens = tokens
        #: (user, token) of every XOAUTH2 attempt, accepted or not.
        self.attempts: list[tuple[str, str]] = []

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        """RFC-less but documented by Google: base64 of user=U^Aauth=Bearer T^A^A."""
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        fields = base64.b64decode(args[1]).decode().split("\x01")
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        user, token = values.get("user", ""), values.get("auth", "").removeprefix("Bearer ")
        self.attempts.append((user, token))
        if token in self.tokens:
            return AuthResult(success=True, auth_data=user)
        await server.challenge_auth(REFUSAL_CHALLENGE)  # the client answers with an empty line
        return AuthResult(success=False, handled=False, message=REFUSAL)


def token_script(path: Path, token: str) -> Path:
    """An executable that prints `token`, like a real OAuth2 helper printing an access token."""
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' '{token}'\n", encoding="utf-8")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
