"""A private Dovecot whose XOAUTH2 logins are checked by its oauth2 passdb against a token
introspection endpoint (RFC 7662) served on 127.0.0.1, as a provider such as Google would."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.integration.dovecot import HOST, PASSWORD, Dovecot, find_dovecot

_STATIC_PASSDB = f"""passdb {{
  driver = static
  args = password={PASSWORD}
}}"""


class Introspection:
    """POST /introspect with token=...: {"active": true, "username": ...} for a known token."""

    def __init__(self) -> None:
        #: token -> the user it belongs to; tests add and remove tokens.
        self.tokens: dict[str, str] = {}
        #: every token Dovecot asked about, in order.
        self.asked: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                token = (form.get("token") or [""])[0]
                owner.asked.append(token)
                user = owner.tokens.get(token)
                body = {"active": True, "username": user} if user else {"active": False}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass  # quiet: pytest shows failures, not every request

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}/introspect"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class OAuthDovecot(Dovecot):
    """Passwords for PLAIN/LOGIN as usual ("pw"); XOAUTH2 and OAUTHBEARER tokens only through
    the introspection endpoint."""

    def __init__(self, directory: Path, binary: str, introspection: Introspection) -> None:
        self.introspection = introspection
        super().__init__(directory, binary)

    @classmethod
    def create_with(cls, introspection: Introspection) -> OAuthDovecot:
        import tempfile  # noqa: PLC0415

        binary = find_dovecot()
        if binary is None:
            raise RuntimeError("dovecot is not installed")
        return cls(Path(tempfile.mkdtemp(prefix="awayd-dovecot-oauth-")), binary, introspection)

    def _config(self, uid: int, gid: int) -> str:
        conf = super()._config(uid, gid)
        oauth = self.dir / "dovecot-oauth2.conf.ext"
        oauth.write_text(
            f"introspection_mode = post\nintrospection_url = {self.introspection.url}\n"
            "username_attribute = username\nactive_attribute = active\nactive_value = true\n",
            encoding="utf-8")
        oauth.chmod(0o644)
        assert _STATIC_PASSDB in conf
        return conf.replace(_STATIC_PASSDB, f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {oauth}
}}
passdb {{
  driver = static
  mechanisms = plain login
  args = password={PASSWORD}
}}""")
