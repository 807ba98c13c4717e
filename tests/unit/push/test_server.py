"""The push endpoint over real sockets (TCP on 127.0.0.1 and a Unix socket): answers and hand-off."""

from __future__ import annotations

import http.client
import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from awayd.push.events import PushEvent
from awayd.push.server import PushServer

TOKEN = "s3cret-token"
EVENT = {"event": "MessageNew", "folder": "INBOX", "uid": 3, "uidvalidity": 7}


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


@pytest.fixture(params=["tcp", "unix"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path
             ) -> Iterator[tuple[PushServer, list[list[PushEvent]], Path | None]]:
    got: list[list[PushEvent]] = []
    path = tmp_path / "push.sock" if request.param == "unix" else None
    listen = f"unix:{path}" if path else "127.0.0.1:0"
    server = PushServer(listen, TOKEN, got.append, structlog.get_logger())
    server.start()
    try:
        yield server, got, path
    finally:
        server.stop()


def ask(endpoint: tuple[PushServer, list[list[PushEvent]], Path | None], body: bytes | None, *,
        token: str = TOKEN, path: str = "/events", declared: int | None = None) -> int:
    """POST `body`; with `declared`, only the headers, claiming that Content-Length."""
    server, _got, sock = endpoint
    conn = UnixConnection(str(sock)) if sock else http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=5)
    try:
        if declared is None:
            conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}"})
        else:
            conn.putrequest("POST", path)
            conn.putheader("Authorization", f"Bearer {token}")
            conn.putheader("Content-Length", str(declared))
            conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_good_request_is_accepted_and_handed_over(endpoint) -> None:
    body = json.dumps({"user": "a@example.org", "events": [EVENT]}).encode()
    assert ask(endpoint, body) == 202
    assert endpoint[1] == [[PushEvent("a@example.org", "INBOX", 3, 7)]]


def test_bad_requests_are_refused_and_nothing_is_handed_over(endpoint) -> None:
    good = json.dumps({"user": "a@example.org", "events": [EVENT]}).encode()
    assert ask(endpoint, good, token="wrong") == 401
    assert ask(endpoint, good, token="") == 401
    assert ask(endpoint, good, path="/other") == 404
    assert ask(endpoint, b"[1, 2") == 400
    assert ask(endpoint, None, declared=64 * 1024 + 1) == 413
    assert endpoint[1] == []


def test_the_unix_socket_is_not_open_to_everyone(tmp_path: Path) -> None:
    path = tmp_path / "push.sock"
    server = PushServer(f"unix:{path}", TOKEN, lambda _e: None, structlog.get_logger())
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
    finally:
        server.stop()
    assert not path.exists()
