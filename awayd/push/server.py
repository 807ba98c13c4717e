"""The push endpoint: HTTP POST /events on loopback or a Unix socket, bearer token, JSON body."""

from __future__ import annotations

import contextlib
import hmac
import os
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from awayd.errors import ConfigError
from awayd.push.events import MAX_BODY, EventError, PushEvent, parse_body

PATH = "/events"


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class PushServer:
    """Answers each request at once (202, 400, 401, 404, 413) and hands accepted events to
    `accept`, which must not block: the delivering Dovecot process waits for the answer."""

    def __init__(self, listen: str, token: str, accept: Callable[[list[PushEvent]], None],
                 log: Any) -> None:
        self.listen = listen
        self.log = log
        self._expected = [f"Bearer {token}".encode()]  # one cell: a reload may change the token
        handler = _handler(self._expected, accept, log)
        try:
            if listen.startswith("unix:"):
                path = Path(listen.removeprefix("unix:"))
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # a socket left by a killed process
                self.server: socketserver.BaseServer = _UnixServer(str(path), handler)
                os.chmod(path, 0o660)
            else:
                host, _, port = listen.rpartition(":")
                self.server = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
        except OSError as err:
            raise ConfigError(f"push.listen {listen}: cannot listen: {err.strerror or err}") from err
        self.thread = threading.Thread(target=self.server.serve_forever, name="push-http",
                                       daemon=True)

    @property
    def port(self) -> int:
        address = self.server.server_address
        return int(address[1]) if isinstance(address, tuple) else 0

    def start(self) -> None:
        self.thread.start()

    def set_token(self, token: str) -> None:
        """Expect `token` from the next request on (a reload read the token file again)."""
        self._expected[0] = f"Bearer {token}".encode()

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for serve_forever(), which may never have run
            self.server.shutdown()
        self.server.server_close()
        if self.listen.startswith("unix:"):
            with contextlib.suppress(OSError):
                Path(self.listen.removeprefix("unix:")).unlink()


def _handler(expected: list[bytes], accept: Callable[[list[PushEvent]], None],
             log: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1: Dovecot's client sends `Expect: 100-continue` and waits 2 s for it
        protocol_version = "HTTP/1.1"
        server_version = "awayd-push"

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._answer(411)
                return
            if not 0 <= length <= MAX_BODY:
                log.warning("push.refused", status=413, length=length)
                self._answer(413)
                return
            # read before any answer: a client still sending would get a broken pipe
            body = self.rfile.read(length)
            if self.path != PATH:
                self._answer(404)
                return
            given = self.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected[0]):
                log.warning("push.refused", status=401, note="missing or wrong token")
                self._answer(401)
                return
            try:
                events = parse_body(body)
            except EventError as err:
                log.warning("push.refused", status=400, error=str(err))
                self._answer(400)
                return
            accept(events)  # only queues: 202 means "queued", and comes at once
            self._answer(202)

        def do_GET(self) -> None:
            self._answer(405)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            if status in (411, 413):  # the body is unread: this connection cannot carry another
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the decisions are logged as events; one line per request is noise

    return Handler
