"""A TCP proxy on 127.0.0.1 in front of Dovecot that makes it behave like lesser IMAP servers.

`drop_idle_news`: while the client is in IDLE, the untagged `* N EXISTS` and `* N RECENT`
lines are dropped: a server that never pushes (the client must check on its own).
`hide_idle`: IDLE is removed from every CAPABILITY list: a server without IDLE.
Responses are forwarded line by line, literals (`{n}`) as they are.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from typing import BinaryIO

from tests.integration.dovecot import HOST

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_NEWS = re.compile(rb"\* \d+ (EXISTS|RECENT)\r\n", re.IGNORECASE)
_IDLE_CAP = re.compile(rb" IDLE(?=[ \]\r])", re.IGNORECASE)
_IDLE_CMD = re.compile(rb"[^ ]+ IDLE\r\n", re.IGNORECASE)


def _read_response(stream: BinaryIO) -> bytes:
    """One line with any literals it announces (and the rest of the line after each)."""
    line = stream.readline()
    out = line
    while (found := _LITERAL.search(line)) is not None:
        out += stream.read(int(found.group(1)))
        line = stream.readline()
        out += line
    return out


class ImapProxy:
    """Listens on a free port; each client gets its own connection to `upstream_port`."""

    def __init__(self, upstream_port: int, *, drop_idle_news: bool = False,
                 hide_idle: bool = False) -> None:
        self.upstream_port = upstream_port
        self.drop_idle_news = drop_idle_news
        self.hide_idle = hide_idle
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.idles = 0  # IDLE commands seen
        self.dropped = 0  # EXISTS/RECENT lines withheld
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> ImapProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()

    def cut(self) -> None:
        """Close every open connection (the client sees the server go away)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> ImapProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.upstream_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            idling = threading.Event()
            for target in (self._to_server, self._to_client):
                threading.Thread(target=target, args=(client, upstream, idling), daemon=True).start()

    def _to_server(self, client: socket.socket, upstream: socket.socket,
                   idling: threading.Event) -> None:
        with contextlib.suppress(OSError, ValueError), client.makefile("rb") as stream:
            while line := _read_response(stream):
                if _IDLE_CMD.fullmatch(line):
                    with self._lock:
                        self.idles += 1
                    idling.set()
                elif line.upper() == b"DONE\r\n":
                    idling.clear()
                upstream.sendall(line)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _to_client(self, client: socket.socket, upstream: socket.socket,
                   idling: threading.Event) -> None:
        with contextlib.suppress(OSError, ValueError), upstream.makefile("rb") as stream:
            while response := _read_response(stream):
                if self.drop_idle_news and idling.is_set() and _NEWS.fullmatch(response):
                    with self._lock:
                        self.dropped += 1
                    continue
                if self.hide_idle and b"CAPABILITY" in response.upper():
                    response = _IDLE_CAP.sub(b"", response)
                client.sendall(response)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
