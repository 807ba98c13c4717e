"""The demo's embedded IMAP server with the passwords the demo can generate."""

from __future__ import annotations

import imaplib
from pathlib import Path

import pytest

from awayd.demo.servers import HOST, ImapServer

pytest.importorskip("pymap")


@pytest.mark.parametrize("password", ["-Ab3_xYz9QkLm", "plain-Password_1"])
def test_the_imap_server_starts_with_a_password_that_looks_like_an_option(
    tmp_path: Path, password: str
) -> None:
    """secrets.token_urlsafe() begins with "-" about once in 64 demos: pymap must take it as
    the password, not as an option, and log the user in with it."""
    server = ImapServer(tmp_path, "demo@example.org", password)
    server.start()
    try:
        imap = imaplib.IMAP4(HOST, server.port, timeout=10)
        try:
            assert imap.login("demo@example.org", password)[0] == "OK"
        finally:
            imap.logout()
    finally:
        server.stop()
