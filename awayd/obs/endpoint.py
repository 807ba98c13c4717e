"""The /metrics and /healthz HTTP endpoint: a small threaded server on the listen address."""

from __future__ import annotations

import errno
import socket
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, cast

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from awayd.errors import AwaydError, ConfigError

if TYPE_CHECKING:
    from awayd.obs.metrics import Metrics

_log = structlog.get_logger(__name__)


def serve(listen: str, metrics: Metrics) -> MetricsServer:
    """Serve /metrics and /healthz of `metrics` on `listen` in a thread (see Metrics.start_http)."""
    host, port = parse_listen(listen)
    server_cls = _V6Server if ":" in host else _Server
    try:
        server = server_cls((host, port), _Handler)
    except OSError as err:
        message = f"metrics listen {listen!r}: {err.strerror or err}"
        if err.errno == errno.EADDRINUSE:
            busy = AwaydError(message)
            busy.transient = True
            raise busy from err
        raise ConfigError(message) from err
    server.metrics = metrics
    return MetricsServer(server)


def parse_listen(listen: str) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port" into (host, port).

    Raises:
        ConfigError: empty host, missing or out-of-range port.
    """
    host, sep, port_text = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    problem = None
    if not sep or not host:
        problem = "expected host:port, e.g. 127.0.0.1:9387 or [::1]:9387"
    elif not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        problem = f"port must be 0-65535, found {port_text!r}"
    if problem is not None:
        raise ConfigError(f"metrics listen {listen!r}: {problem}")
    return host, int(port_text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    metrics: Metrics

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host with getfqdn(), a DNS query at startup
        # that can hang without a resolver; the name is only used for CGI variables.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class _V6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "awayd"

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _respond(self, *, head: bool) -> None:
        metrics = cast(_Server, self.server).metrics
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, metrics.exposition(), head)
        elif path == "/healthz":
            health = metrics.health()
            if health.ok:
                self._send(HTTPStatus.OK, "text/plain; charset=utf-8", b"ok\n", head)
            else:
                body = health.describe().encode("utf-8")
                status = HTTPStatus.SERVICE_UNAVAILABLE
                self._send(status, "text/plain; charset=utf-8", body, head)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n", head)

    def _send(self, status: HTTPStatus, ctype: str, body: bytes, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Scrapes every 15 s would drown the journal; errors still go through log_error.
        pass

    def log_error(self, format: str, *args: object) -> None:
        _log.warning("metrics.http_error", detail=format % args, client=self.client_address[0])


class MetricsServer:
    """A running /metrics endpoint; stop() shuts it down and frees the port."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        address = server.server_address
        self.host = str(address[0])
        self.port = int(address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="awayd-metrics", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()
